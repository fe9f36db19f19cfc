"""A deployment whose worker died mid-change is picked up again at once: the lock names its holder, and a
lock whose holder on this machine is gone is taken over (not waited out for its whole lifetime)."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest

from apps.core.keys import redis_key
from apps.core.notify import redis_client
from apps.endpoints import reconcile
from tests.endpoints.test_reconcile import new_deployment

pytestmark = pytest.mark.django_db


def _dead_holder() -> str:
    """The lock value a worker process that has exited would have left (a real pid and create time)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(process.pid).create_time()
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:{created}:token"


def test_a_lock_left_by_a_dead_worker_is_taken_over_and_a_live_ones_is_respected(local) -> None:  # type: ignore[no-untyped-def]
    deployment = new_deployment()
    key = redis_key(f"deployment:{deployment.pk}:lock")
    client = redis_client()

    client.set(key, _dead_holder(), ex=reconcile.LOCK_TTL_S)
    assert ("reconcile", deployment.pk) in reconcile.periodic_work(queued_ttl_s=5)  # not counted as busy
    with reconcile.deployment_lock(deployment.pk) as held:
        assert held
        me = psutil.Process()
        assert client.get(key).decode().startswith(f"{socket.gethostname()}:{me.pid}:")
    assert client.get(key) is None  # released

    live = psutil.Process()  # this process: alive
    client.set(key, f"{socket.gethostname()}:{live.pid}:{live.create_time()}:token", ex=reconcile.LOCK_TTL_S)
    with reconcile.deployment_lock(deployment.pk) as held:
        assert not held
    # Another machine's holder cannot be checked from here: its lock is respected until it expires.
    client.set(key, "elsewhere:1:1.0:token", ex=reconcile.LOCK_TTL_S)
    with reconcile.deployment_lock(deployment.pk) as held:
        assert not held
    client.delete(key)
