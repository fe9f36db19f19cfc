"""Beat tasks that run once per period even when two beat processes run by mistake.

Celery beat must run as one process; a second one (a rollout that overlapped, a `replicas: 2`, a developer's
`studio up` against the production Redis) sends every periodic task twice. `beat_once` makes each periodic task
take a Redis lock named after it for 80 % of its period before doing anything: the first send of a period runs,
a second send within that window returns None at once. One beat's next send (a full period later) finds the
lock expired; two beats offset by any amount share one run per period. Only a delivered task (one with a task
id: a worker's, or `.apply()`) takes the lock; a plain call runs the body.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from celery import current_task

from apps.core.keys import redis_key
from apps.core.notify import redis_client

P = ParamSpec("P")
R = TypeVar("R")
HOLD = 0.8  # of the period: long enough to cover a second beat's send, short enough for the next period's

logger = logging.getLogger(__name__)


def beat_once(period_s: float | Callable[[], float]) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Run the task's body at most once per `period_s` (a number, or a function reading it from settings)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R | None]:
        key = redis_key(f"beat:{func.__module__}.{func.__name__}")

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
            if not getattr(getattr(current_task, "request", None), "id", None):
                return func(*args, **kwargs)  # called directly (a test, a shell), not delivered by a worker
            period = period_s() if callable(period_s) else period_s
            try:
                taken = redis_client().set(key, uuid.uuid4().hex, nx=True, px=max(1, int(period * HOLD * 1000)))
            except redis.RedisError as exc:  # no Redis, no broker either: run rather than skip silently
                logger.warning("beat lock for %s unavailable, running anyway: %s", func.__name__, exc)
                taken = True
            if not taken:
                logger.info("%s already ran this period (a second beat process?); skipped", func.__name__)
                return None
            return func(*args, **kwargs)

        run.beat_period_s = period_s  # type: ignore[attr-defined]  # the suite checks every beat task has one
        return run

    return decorate
