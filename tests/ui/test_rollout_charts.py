"""The Traffic tab's rollout panel charts the target and the baseline side by side, and those charts hear
the pushes the rollout's own metrics drain makes (real Redis channel layer, the beat task called as the worker
does)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.test import Client

from apps.endpoints import services as endpoint_services
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState
from apps.rollouts import services, tasks
from apps.rollouts.models import Rollout
from tests import factories
from tests.monitoring.gateway import Request, aggregate, clear, push
from tests.ui.sockets import connect

ROLLOUT = {"deployment": "green", "steps": [20, 100], "step_duration": "10m", "min_requests": 1000}


@pytest.fixture(autouse=True)
def _queues() -> Any:
    clear()
    yield
    clear()


def _served() -> Endpoint:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    Deployment.objects.filter(endpoint=endpoint).update(state=ProvisioningState.SUCCEEDED)
    return endpoint_services.traffic_set(endpoint=endpoint, traffic={"blue": 100, "green": 0})


def _answers(deployment: str, count: int, *, failing: int = 0, status: int = 500, latency_ms: float = 20) -> None:
    now = time.time()
    push(
        aggregate(
            Request(ts=now, deployment=deployment, latency_ms=latency_ms, status=status if i < failing else 200)
            for i in range(count)
        )
    )


def _traces(figure: dict[str, Any]) -> dict[str, list[Any]]:
    return {trace["name"]: [y for y in trace["y"] if y is not None] for trace in figure["data"]}


@pytest.mark.django_db
def test_the_panel_draws_the_target_and_the_baseline_side_by_side_while_the_rollout_runs(browser: Client) -> None:
    services.rollout_start(endpoint=_served(), doc=ROLLOUT)
    _answers("green", 20, failing=4, status=424, latency_ms=300)  # 424: the model failed, an error as the gate counts
    _answers("blue", 80, latency_ms=20)
    services.rollouts_evaluate()
    assert Rollout.objects.get().state == "Running"  # 20 of 1000 answers: not judged yet

    panel = browser.get("/endpoints/ep1/rollout/").content.decode()
    assert 'id="rollout-charts-' in panel and "hx-preserve" in panel and "green and the baseline, live" in panel
    drawn = json.loads(panel.split('<script id="figures-data" type="application/json">')[1].split("</script>")[0])
    pushed = browser.get("/endpoints/ep1/rollout/figures/").json()["figures"]
    for figures in (drawn, pushed):
        assert list(figures) == ["requests", "error_rate", "latency"]
        assert list(_traces(figures["requests"])) == ["green (target)", "baseline (blue)"]
        # One minute, still in progress: its rate is over the part that has passed, the same for both lines.
        green, blue = (sum(_traces(figures["requests"])[line]) for line in ("green (target)", "baseline (blue)"))
        assert green >= 20 and blue == pytest.approx(4 * green)
        assert _traces(figures["error_rate"])["green (target)"] == [20.0]
        assert _traces(figures["error_rate"])["baseline (blue)"] == [0.0]
        assert _traces(figures["error_rate"])["threshold"] == [1.0, 1.0]  # max_error_rate, dashed
        latency = _traces(figures["latency"])
        assert latency["green (target)"][0] > latency["baseline (blue)"][0]


@pytest.mark.django_db
def test_a_finished_rollout_has_no_live_charts_and_an_endpoint_without_one_says_so(browser: Client) -> None:
    endpoint = _served()
    missing = browser.get("/endpoints/ep1/rollout/figures/")
    assert missing.status_code == 404 and "has no rollout" in missing.json()["error"]["message"]
    rollout = services.rollout_start(endpoint=endpoint, doc=ROLLOUT)
    services.rollout_act(rollout=rollout, action="abort")
    assert 'id="rollout-charts-' not in browser.get("/endpoints/ep1/rollout/").content.decode()


@pytest_asyncio.fixture
async def _close_thread_connections() -> Any:
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_thread_connections")
async def test_the_rollouts_own_metrics_drain_pushes_the_charts_to_open_tabs() -> None:
    user = await sync_to_async(factories.user)("alice")
    await sync_to_async(lambda: services.rollout_start(endpoint=_served(), doc=ROLLOUT))()
    socket, connected, _ = await connect("/ws/endpoints/ep1/charts/", user)
    assert connected
    await sync_to_async(_answers)("green", 5)

    assert await sync_to_async(tasks.rollouts_evaluate)() == 1  # it drained the list the metrics task would have

    message = await socket.receive_json()
    assert message["type"] == "endpoint.charts" and message["endpoint"] == "ep1"
    assert sum(_traces(message["figures"]["requests"])["green"]) > 0
    await socket.disconnect()
