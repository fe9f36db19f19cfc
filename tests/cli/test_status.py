"""`studio status`: the health table of a running studio, and exit 1 while deployments are not reconciled."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from apps.core import heartbeat
from tests.cli.conftest import Result


@pytest.mark.django_db(transaction=True)
def test_status_prints_each_part_with_its_heartbeat_and_fails_when_the_reconciler_is_stale(
    studio: Callable[..., Result],
) -> None:
    now = time.time()
    heartbeat.beat("worker", now - 2)
    heartbeat.beat("reconciler", now - 1)
    heartbeat.beat("beat", now - 3600)
    shown = studio("status")
    assert shown.code == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[1:]}
    assert rows["worker"][0] == "ok" and 2 <= int(rows["worker"][1]) < 30  # "N s ago"
    assert rows["beat"][0] == "stale" and int(rows["beat"][1]) >= 3600
    assert rows["reconciler"][0] == "ok"

    heartbeat.beat("reconciler", now - 3600)
    stale = studio("status")
    assert stale.code == 1
    assert "reconciler  stale" in stale.stdout
    assert "ERROR: deployments are not being reconciled (no pass of the reconciler within 30 s)" in stale.stderr
