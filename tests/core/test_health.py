"""Health that tells the truth: heartbeats of worker, beat and reconciler in /healthz, the pages' banner,
`studio status`, and the pure decision behind them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.test import Client

from apps.core import heartbeat
from apps.core.heartbeat import parts_status
from tests import factories


def test_parts_status_marks_old_heartbeats_stale_and_unseen_parts_missing() -> None:
    parts = {p.name: p for p in parts_status({"worker": 100.0, "beat": 70.0}, now=110.0, stale_after_s=30)}
    assert (parts["worker"].status, parts["worker"].age_s) == ("ok", 10.0)
    assert (parts["beat"].status, parts["beat"].age_s) == ("stale", 40.0)
    assert parts["reconciler"].status == "missing"


@pytest.mark.django_db
def test_healthz_reports_each_part_and_fails_while_the_reconciler_is_stale(client: Client) -> None:
    now = time.time()
    heartbeat.beat("worker", now)
    heartbeat.beat("beat", now - 1)
    heartbeat.beat("reconciler", now - 600)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    parts = {p["name"]: p for p in answer.json()["parts"]}
    assert [parts[name]["status"] for name in ("web", "redis", "worker", "beat", "reconciler")] == [
        "ok",
        "ok",
        "ok",
        "ok",
        "stale",
    ]
    assert parts["reconciler"]["age_s"] >= 600

    heartbeat.beat("reconciler", time.time())
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_pages_show_a_banner_while_deployments_are_not_reconciled(client: Client) -> None:
    client.force_login(factories.user())
    last = time.time() - 600
    heartbeat.beat("reconciler", last)
    page = client.get("/", follow=True).content.decode()
    since = datetime.fromtimestamp(last, UTC).strftime("%H:%M")
    assert f"Deployments are not being reconciled since {since} UTC" in page
    heartbeat.beat("reconciler", time.time())
    assert "not being reconciled" not in client.get("/", follow=True).content.decode()
