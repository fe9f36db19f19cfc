"""Two beat processes running by mistake do not double-run a periodic task."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import shared_task
from django.conf import settings

from apps.core.beat import beat_once
from apps.core.keys import redis_key
from apps.core.notify import redis_client
from studio.celery import app

RUNS = redis_key("test:beat-runs")


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    """These tests use no database fixture, so the run's Redis reset does not reach them: clean up here."""
    keys = [RUNS, redis_key(f"beat:{__name__}._count_run")]
    redis_client().delete(*keys)
    yield
    redis_client().delete(*keys)


@shared_task
@beat_once(0.5)
def _count_run() -> int:
    return int(redis_client().incr(RUNS))


def _tick() -> int | None:
    """One delivery of the task, as a worker runs what beat sent (`.apply()` runs it here, with a task id)."""
    return _count_run.apply().result  # type: ignore[no-any-return]


def _beat(go: Any, sends: int, period: float) -> None:
    """One beat process: sends the task every period (here: runs it in place, as a worker would)."""
    go.wait()
    for _ in range(sends):
        _tick()
        time.sleep(period)


def test_two_beat_processes_run_a_periodic_task_once_per_period() -> None:
    context = multiprocessing.get_context("fork")
    go = context.Event()
    beats = [context.Process(target=_beat, args=(go, 4, 0.5)) for _ in range(2)]
    for beat in beats:
        beat.start()
    began = time.monotonic()
    go.set()
    for beat in beats:
        beat.join(timeout=60)
        assert beat.exitcode == 0
    elapsed = time.monotonic() - began

    runs = int(redis_client().get(RUNS) or 0)
    # Eight sends from two beats over about four periods: one run per period, never both beats' sends.
    assert 1 <= runs <= int(elapsed / (0.5 * 0.8)) + 1
    assert runs < 8


def test_a_second_send_within_the_period_is_skipped_and_the_next_period_runs() -> None:
    assert _tick() == 1
    assert _tick() is None  # the other beat's send of the same period
    time.sleep(0.45)
    assert _tick() == 2


def test_a_direct_call_is_not_guarded() -> None:
    assert _count_run() == 1
    assert _count_run() == 2


def test_every_beat_task_is_guarded() -> None:
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        task = app.tasks[str(entry["task"])]
        assert hasattr(task.run, "beat_period_s"), f"{entry['task']} runs twice when two beats run"
