"""The periodic pass over settled deployments, in chunks: deployments that run as their rows say cost the same few
queries however many there are, and nothing is written, announced or published for them; what changed is written
and published for that deployment alone; one deployment's trouble leaves the rest of its chunk observed.

The backend is a fake at the backend seam (`backends/base.py`): what it reports is the test's to choose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.keys import redis_key
from apps.core.notify import ROUTING_VERSIONS_KEY, redis_client
from apps.endpoints import reconcile
from apps.endpoints.backends.base import BackendUnavailable, DeploymentSpec, InstanceStatus, Observed
from apps.endpoints.models import Deployment, DeploymentEvent, Endpoint, Instance, ProvisioningState
from tests import factories

pytestmark = pytest.mark.django_db

ADDRESS = "http://127.0.0.1:9"


class ReportingBackend:
    """Reports every deployment's one instance ready, except those the test marks unready or failing (by name)."""

    def __init__(self) -> None:
        self.unready: set[str] = set()
        self.unavailable: set[str] = set()
        self.broken: set[str] = set()
        self.seen: list[str] = []

    def supervise(self, spec: DeploymentSpec) -> Observed:
        self.seen.append(spec.endpoint_name)
        if spec.endpoint_name in self.unavailable:
            raise BackendUnavailable("the cluster did not answer")
        if spec.endpoint_name in self.broken:
            raise RuntimeError("a bug in one deployment's pass")
        ready = spec.endpoint_name not in self.unready
        state = Instance.State.READY if ready else Instance.State.UNREADY
        status = InstanceStatus(
            name=f"{spec.name}-0", state=state, ready=ready, address=ADDRESS, generation=spec.generation
        )
        return Observed(instances=(status,))

    apply = observe = supervise

    def delete(self, spec: DeploymentSpec) -> None:
        raise NotImplementedError("not deleted in these tests")


def settled(total: int) -> list[int]:
    """`total` deployments (one endpoint each) that run as their rows say: Succeeded, their instance ready."""
    template = Deployment.objects.first() or factories.deployment(factories.endpoint("obs-0000"), "blue")
    fields = {
        f.attname: getattr(template, f.attname)
        for f in Deployment._meta.concrete_fields
        if f.attname not in ("id", "uid", "endpoint_id", "name", "created_at", "updated_at")
    }
    fields.update(state=ProvisioningState.SUCCEEDED, observed_generation=template.generation, ready_instances=1)
    have = Endpoint.objects.count()
    endpoints = Endpoint.objects.bulk_create(Endpoint(name=f"obs-{i:04d}") for i in range(have, total))
    Deployment.objects.bulk_create(Deployment(endpoint=ep, name="blue", **fields) for ep in endpoints)
    Deployment.objects.filter(pk=template.pk).update(**fields)
    deployments = Deployment.objects.exclude(instances__isnull=False)
    Instance.objects.bulk_create(
        Instance(deployment=d, name="blue-0", address=ADDRESS, state="Ready", ready=True, generation=d.generation)
        for d in deployments
    )
    return list(Deployment.objects.order_by("pk").values_list("pk", flat=True))


def observed_quietly(
    pks: list[int], backend: ReportingBackend, capture: Callable[..., Any]
) -> tuple[list[str], dict[int, str | None]]:
    """The SQL of one observation of `pks`, and the states; asserts nothing was left to run after commit."""
    with CaptureQueriesContext(connection) as queries, capture() as after_commit:
        states = reconcile.observe_many(pks, backend=backend)  # type: ignore[arg-type]
    assert after_commit == [], "an unchanged deployment was announced or published"
    return [query["sql"] for query in queries], states


def test_observing_unchanged_deployments_costs_the_same_few_queries_for_3_or_60_and_writes_nothing(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    backend = ReportingBackend()
    few = settled(3)
    before = dict(Instance.objects.values_list("pk", "updated_at"))
    events = DeploymentEvent.objects.count()
    small, states = observed_quietly(few, backend, django_capture_on_commit_callbacks)
    assert states == dict.fromkeys(few, ProvisioningState.SUCCEEDED)

    many = settled(60)
    large, states = observed_quietly(many, backend, django_capture_on_commit_callbacks)

    assert states == dict.fromkeys(many, ProvisioningState.SUCCEEDED)
    assert len(backend.seen) == 63  # every deployment was observed, each once per pass
    assert len(small) == len(large) <= 3, large
    assert all(sql.lstrip().upper().startswith("SELECT") for sql in small + large), large
    assert dict(Instance.objects.filter(pk__in=before).values_list("pk", "updated_at")) == before
    assert DeploymentEvent.objects.count() == events
    assert not any(redis_client().exists(redis_key(f"deployment:{pk}:lock")) for pk in many)


def test_an_instance_that_stopped_answering_is_written_and_published_for_its_endpoint_alone(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    pks = settled(5)
    backend = ReportingBackend()
    backend.unready.add("obs-0002")
    untouched = dict(Instance.objects.exclude(deployment__endpoint__name="obs-0002").values_list("pk", "updated_at"))

    with django_capture_on_commit_callbacks(execute=True):
        states = reconcile.observe_many(pks, backend=backend)  # type: ignore[arg-type]

    assert set(states.values()) == {ProvisioningState.SUCCEEDED}
    row = Instance.objects.get(deployment__endpoint__name="obs-0002")
    assert (row.ready, row.state) == (False, "Unready")
    assert Deployment.objects.get(endpoint__name="obs-0002").ready_instances == 0
    published = {name.decode() for name in redis_client().hkeys(ROUTING_VERSIONS_KEY)}
    assert published == {"obs-0002"}  # the gateways reload that endpoint and no other
    assert dict(Instance.objects.filter(pk__in=untouched).values_list("pk", "updated_at")) == untouched


def test_a_deployment_whose_backend_fails_leaves_the_rest_of_its_chunk_observed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pks = settled(6)
    backend = ReportingBackend()
    backend.unavailable.add("obs-0001")
    backend.broken.add("obs-0003")

    states = reconcile.observe_many(pks, backend=backend)  # type: ignore[arg-type]

    by_name = dict(zip(Deployment.objects.order_by("pk").values_list("endpoint__name", flat=True), pks, strict=True))
    assert states[by_name["obs-0001"]] is None and states[by_name["obs-0003"]] is None
    assert [name for name, pk in by_name.items() if states[pk] == ProvisioningState.SUCCEEDED] == [
        "obs-0000",
        "obs-0002",
        "obs-0004",
        "obs-0005",
    ]
    assert "the cluster did not answer" in caplog.text and "a bug in one deployment's pass" in caplog.text
    assert not any(redis_client().exists(redis_key(f"deployment:{pk}:lock")) for pk in pks)


def test_a_chunk_leaves_alone_the_deployments_another_worker_holds() -> None:
    pks = settled(4)
    backend = ReportingBackend()
    with reconcile.deployment_lock(pks[1]) as held:
        assert held
        states = reconcile.observe_many(pks, backend=backend)  # type: ignore[arg-type]
        assert redis_client().exists(redis_key(f"deployment:{pks[1]}:lock"))  # still the other worker's
    assert states[pks[1]] is None
    assert [states[pk] for pk in (pks[0], pks[2], pks[3])] == [ProvisioningState.SUCCEEDED] * 3
    assert len(backend.seen) == 3


@pytest.mark.parametrize(
    ("work", "settled_kinds", "chunk", "tasks"),
    [
        (
            [("observe", 1), ("observe", 2), ("observe", 3)],
            {1: "local", 2: "local", 3: "local"},
            2,
            [("observe", [1, 2]), ("observe", [3])],
        ),
        (
            [("observe", 1), ("observe", 2), ("observe", 3)],
            {1: "local", 2: "kubernetes", 3: "local"},
            50,
            [("observe", [1, 3]), ("observe", [2])],
        ),
        (
            [("reconcile", 1), ("observe", 2), ("delete", 3), ("observe", 4), ("observe", 5)],
            {2: "local", 5: "local"},
            50,
            [("observe", [2, 5]), ("reconcile", [1]), ("delete", [3]), ("observe", [4])],
        ),
    ],
    ids=["chunks-of-2", "one-kind-per-chunk", "unsettled-alone"],
)
def test_settled_observations_are_chunked_by_backend_kind_and_everything_else_goes_alone(
    work: list[tuple[str, int]], settled_kinds: dict[int, str], chunk: int, tasks: list[tuple[str, list[int]]]
) -> None:
    assert reconcile.batch_work(work, settled_kinds, chunk=chunk) == tasks  # type: ignore[arg-type]
