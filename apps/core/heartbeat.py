"""Heartbeats of the studio's background parts, and the health report built from them.

The Celery worker and beat each write `heartbeat:<part>` (a Unix time) every STUDIO_HEARTBEAT_S from a
thread of their own; the periodic reconcile pass writes `heartbeat:reconciler` each time it runs (which
needs beat to send it and a worker to run it). `/healthz`, `studio status` and the studio pages' banner
read them through `health_report()`; the decision (`parts_status`) is a pure function of the ages.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

import redis
from django.conf import settings

from apps.core.keys import redis_key
from apps.core.notify import redis_client

logger = logging.getLogger(__name__)

PARTS = ("worker", "beat", "reconciler")
Status = Literal["ok", "stale", "missing", "unknown"]


def _key(part: str) -> str:
    return redis_key(f"heartbeat:{part}")


def beat(part: str, now: float | None = None) -> None:
    """Record that `part` is alive now (a Redis outage only delays the next one)."""
    try:
        redis_client().set(_key(part), repr(now if now is not None else time.time()))
    except redis.RedisError as exc:
        logger.warning("could not write the %s heartbeat: %s", part, exc)


def start_beating(part: str) -> threading.Thread:
    """A daemon thread that writes `part`'s heartbeat every STUDIO_HEARTBEAT_S for the life of the process."""

    def loop() -> None:
        while True:
            beat(part)
            time.sleep(settings.STUDIO_HEARTBEAT_S)

    thread = threading.Thread(target=loop, name=f"heartbeat-{part}", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class Part:
    """One part of the studio as the health report shows it."""

    name: str
    status: Status
    last_seen: float | None  # Unix time of its last heartbeat
    age_s: float | None


def on_worker_ready(**_: object) -> None:
    start_beating("worker")


def on_beat_init(**_: object) -> None:
    start_beating("beat")


def parts_status(seen: dict[str, float | None], *, now: float, stale_after_s: float) -> list[Part]:
    """Each part's status from the time of its last heartbeat (None: never seen)."""
    parts = []
    for name in PARTS:
        last = seen.get(name)
        if last is None:
            parts.append(Part(name, "missing", None, None))
            continue
        age = max(0.0, now - last)
        parts.append(Part(name, "ok" if age <= stale_after_s else "stale", last, round(age, 1)))
    return parts


def read_heartbeats() -> dict[str, float | None] | None:
    """The last heartbeat of each part, or None when Redis cannot be read."""
    try:
        values = redis_client().mget([_key(name) for name in PARTS])
    except redis.RedisError:
        return None
    return {name: float(value) if value else None for name, value in zip(PARTS, values, strict=True)}


def health_report(now: float | None = None) -> dict[str, object]:
    """What `/healthz` answers: each part with its heartbeat's age; `ok` False when deployments are not reconciled."""
    now = now if now is not None else time.time()
    seen = read_heartbeats()
    stale_after = float(settings.STUDIO_HEARTBEAT_STALE_S)
    if seen is None:
        parts = [Part("redis", "missing", None, None)] + [Part(name, "unknown", None, None) for name in PARTS]
    else:
        parts = [Part("redis", "ok", now, 0.0), *parts_status(seen, now=now, stale_after_s=stale_after)]
    reconciler = next(part for part in parts if part.name == "reconciler")
    return {
        "ok": reconciler.status == "ok",
        "stale_after_s": stale_after,
        "parts": [
            {"name": part.name, "status": part.status, "last_seen": part.last_seen, "age_s": part.age_s}
            for part in [Part("web", "ok", now, 0.0), *parts]
        ],
    }


def not_reconciled_since() -> float | None:
    """The time of the reconciler's last pass when it is stale (None when it is fine or was never seen)."""
    seen = read_heartbeats()
    if seen is None:
        return None  # Redis down: the page cannot tell; /healthz says so
    last = seen.get("reconciler")
    if last is None or time.time() - last <= settings.STUDIO_HEARTBEAT_STALE_S:
        return None
    return last
