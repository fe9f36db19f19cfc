"""Requests in = requests counted: real inference servers behind the real gateway, its records drained
into the store, and the agreement of the mirrored deployment's real answers with the live ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.keys import redis_key
from apps.core.notify import redis_client
from apps.monitoring import compare, selectors, services
from apps.monitoring.models import Grain
from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    _no_reconcile,
    bearer,
    fire,
    make_deployment,
    make_endpoint,
    set_traffic,
    start_gateway,
    start_instance,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_request_through_the_gateway_is_counted_once_and_mirrors_are_compared(request) -> None:  # noqa: ANN001
    launch = request.getfixturevalue("start_instance")  # real inference-server processes
    pairs_queue = redis_key(f"mirror-pairs:{uuid.uuid4().hex}")
    gw = request.getfixturevalue("start_gateway")(mirror_sample_rate=1.0, mirror_pairs_queue=pairs_queue)
    blue, green = launch("blue-0"), launch("green-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    make_deployment(ep, "green", green)
    set_traffic(ep, {"blue": 100, "green": 0}, {"green": 50})
    gw.wait_for(lambda: gw.knows("ep1", "green", instances=1) and gw.state.config.table["ep1"].mirror)
    began = timezone.now() - timedelta(seconds=1)

    shots = fire(gw.score_url("ep1"), bearer(ep), 60)
    gw.wait_for(lambda: gw.state.mirror_in_flight == 0, timeout=20)
    counters = gw.state.metrics.requests_total
    mirrored = sum(n for (e, d, _, is_mirror), n in counters.items() if e == "ep1" and d == "green" and is_mirror)

    def pushed(is_mirror: bool) -> int:
        return sum(r["count"] for r in gw.metrics_records() if r["mirrored"] is is_mirror)

    gw.wait_for(lambda: pushed(False) == 60 and pushed(True) == mirrored, timeout=10)
    gw.wait_for(lambda: redis_client().llen(pairs_queue) == mirrored, timeout=10)

    result = services.metrics_ingest(queue=gw.state.settings.metrics_queue)
    assert services.mirror_pairs_ingest(queue=pairs_queue) == mirrored

    assert [shot.status for shot in shots] == [200] * 60
    assert result.requests == 60 + mirrored
    assert 0 < mirrored < 60
    end = timezone.now() + timedelta(minutes=1)
    for grain in (Grain.TEN_SECONDS, Grain.MINUTE, Grain.HOUR):
        live = selectors.window_summary(
            endpoint="ep1", deployment="blue", start=began - timedelta(hours=1), end=end, grain=grain
        )
        shadow = selectors.window_summary(
            endpoint="ep1", deployment="green", start=began - timedelta(hours=1), end=end, grain=grain
        )
        assert (live.requests, live.mirrored_requests, live.status["2xx"]) == (60, 0, 60)
        assert (shadow.requests, shadow.mirrored_requests) == (mirrored, mirrored)

    # The echo model answers with its instance's name, so every mirrored answer differs from the live one.
    agreement = compare.agreement(endpoint="ep1", deployment="green", start=began, end=end, rel_tol=1e-6)
    assert (agreement["compared"], agreement["agreed"], agreement["agreement_rate"]) == (mirrored, 0, 0.0)
    assert agreement["live_deployments"] == ["blue"]
    assert agreement["examples"][0]["difference"] == "$.instance: 'blue-0' != 'green-0'"
