"""What lets two studios, or two test runs, share one Redis: every key under STUDIO_REDIS_PREFIX; and
what a random test order must not disturb: keys and uids that do not follow the seeded `random`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache

from apps.core.keys import REDIS_PREFIX
from apps.core.notify import ROUTING_VERSION_KEY, redis_client, routing_changed
from apps.endpoints import reconcile, services, tasks
from apps.endpoints.models import Endpoint
from apps.monitoring.records import METRICS_QUEUE, MIRROR_PAIRS_QUEUE
from gateway.config import GatewaySettings
from gateway.proxy import Gateway, _request_id
from gateway.source import DatabaseSource
from studio.pytest_plugin import RUN_ID

REPO = Path(__file__).resolve().parents[1]


def _keys_naming(marker: str) -> set[str]:
    return {key.decode() for key in redis_client().scan_iter(match=f"*{marker}*", count=1000)}


def test_the_run_has_its_own_prefix() -> None:
    assert REDIS_PREFIX == f"studio-test:{RUN_ID}:"
    assert ROUTING_VERSION_KEY == REDIS_PREFIX + "routing:version"
    assert METRICS_QUEUE == REDIS_PREFIX + "metrics" and MIRROR_PAIRS_QUEUE == REDIS_PREFIX + "mirror-pairs"


@pytest.mark.django_db
def test_cache_channel_layer_celery_locks_and_routing_version_write_under_the_prefix(
    django_capture_on_commit_callbacks: object,
) -> None:
    marker = f"isolation-{uuid.uuid4().hex}"
    client = redis_client()

    cache.set(marker, "cached", 60)
    layer = get_channel_layer()
    assert layer is not None
    async_to_sync(layer.group_add)(marker, "specific.isolation!1")
    tasks.reconcile_deployment.apply_async(args=(0,), queue=marker)  # nobody consumes it: the sweep removes it
    with reconcile.deployment_lock(10**9 + 7) as held:
        assert held
        assert client.exists(REDIS_PREFIX + "deployment:1000000007:lock")
    before = int(client.get(ROUTING_VERSION_KEY) or 0)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        routing_changed()

    written = _keys_naming(marker)
    assert f"{REDIS_PREFIX}cache:1:{marker}" in written
    assert f"{REDIS_PREFIX}asgi:group:{marker}" in written
    assert f"{REDIS_PREFIX}{marker}" in written  # the Celery queue
    assert all(key.startswith(REDIS_PREFIX) for key in written), written
    assert int(client.get(ROUTING_VERSION_KEY) or 0) == before + 1


def test_a_bad_prefix_is_named() -> None:
    code = "import apps.core.keys"
    env = {**os.environ, "STUDIO_REDIS_PREFIX": "studio *"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "STUDIO_REDIS_PREFIX must be letters, digits and ':_.-' only, got 'studio *'" in result.stderr


@pytest.mark.django_db
def test_keys_uids_and_gateway_choices_do_not_follow_the_seeded_random() -> None:
    """pytest-randomly seeds `random` before every test; nothing that must be unique may come from it."""

    def draw() -> tuple[object, ...]:
        random.seed(1234)
        gateway = Gateway(GatewaySettings(), DatabaseSource())
        return (
            services._new_key(),
            Endpoint._meta.get_field("uid").get_default(),
            _request_id([]),
            gateway.rng.random(),
        )

    first, second = draw(), draw()
    assert all(a != b for a, b in zip(first, second, strict=True)), (first, second)


def test_keys_left_behind_fail_the_run_and_are_deleted(tmp_path: Path) -> None:
    """A run whose tests leave something writing to Redis after they end fails, naming the keys."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent("""
            import os

            import redis


            def pytest_runtest_logfinish(nodeid, location):  # after the test and its teardown
                name = nodeid.rsplit("::", 1)[1]
                redis.Redis.from_url(os.environ["REDIS_URL"]).set(os.environ["STUDIO_REDIS_PREFIX"] + "late:" + name, 1)
        """)
    )
    (tmp_path / "test_leaky.py").write_text("def test_first():\n    pass\n\n\ndef test_second():\n    pass\n")
    env = {key: value for key, value in os.environ.items() if key not in ("STUDIO_HOME", "STUDIO_REDIS_PREFIX")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "studio.pytest_plugin", "-p", "no:randomly", "-p", "no:cacheprovider"]
        + ["-q", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("FAILED: Redis keys")]
    assert len(lines) == 2, result.stdout
    assert "written after test_leaky.py::test_first had ended (now deleted): studio-test:" in lines[0]
    assert lines[0].endswith(":late:test_first")
    assert "left at the end of the run (now deleted): studio-test:" in lines[1]
    assert lines[1].endswith(":late:test_second")
    named = [line.rsplit(" ", 1)[1] for line in lines]
    assert redis_client().exists(*named) == 0
