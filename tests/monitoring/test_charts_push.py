"""The Monitoring tab's socket is pushed new figures by the metrics task after each ingest; the consumer
reads nothing itself and runs no timer (real Redis channel layer, the task called as the worker does)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async

from apps.monitoring import tasks
from tests import factories
from tests.monitoring.gateway import Request, aggregate, push
from tests.ui.sockets import connect, studio_tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections() -> Any:
    """Consumers and the test's sync code share one worker thread; close its connection so the DB can be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def _setup() -> Any:
    user = factories.user("alice")
    for name in ("ep1", "ep2"):
        factories.deployment(factories.endpoint(name), "blue")
    return user


def _requests(endpoint: str, count: int, status: int = 200) -> None:
    now = time.time()
    push(
        aggregate(
            Request(ts=now - i % 5, deployment="blue", latency_ms=12.0, status=status, endpoint=endpoint)
            for i in range(count)
        )
    )


def _ingest() -> dict[str, int]:
    return tasks.metrics_ingest()


async def test_an_ingest_pushes_new_figures_to_the_open_monitoring_tab_and_nothing_polls() -> None:
    user = await sync_to_async(_setup)()
    # Figures already recorded before the tab opens: a consumer that read the store would send them now.
    await sync_to_async(_requests)("ep1", 10)
    await sync_to_async(_ingest)()

    socket, connected, _ = await connect("/ws/endpoints/ep1/charts/", user)
    assert connected
    assert studio_tasks() == []  # no timer of the studio's own runs beside the socket
    assert await socket.receive_nothing(0.5)

    await sync_to_async(_requests)("ep1", 20, status=503)
    result = await sync_to_async(_ingest)()

    assert result["pushed"] == 1
    message = await socket.receive_json()
    assert message["type"] == "endpoint.charts" and message["endpoint"] == "ep1"
    requests = {trace["name"]: trace for trace in message["figures"]["requests"]["data"]}
    assert sum(requests["blue"]["y"]) > 0
    errors = {trace["name"]: trace["y"] for trace in message["figures"]["errors"]["data"]}
    assert sum(errors["blue"]) > 0  # the 503s of this ingest are in the figures pushed
    assert await socket.receive_nothing(0.3)  # one push per ingest

    # Another endpoint's requests are pushed to that endpoint's tabs only.
    await sync_to_async(_requests)("ep2", 5)
    assert (await sync_to_async(_ingest)())["pushed"] == 1
    assert await socket.receive_nothing(0.5)
    await socket.disconnect()


async def test_an_ingest_with_no_request_pushes_nothing() -> None:
    user = await sync_to_async(_setup)()
    socket, connected, _ = await connect("/ws/endpoints/ep1/charts/", user)
    assert connected
    assert (await sync_to_async(_ingest)())["pushed"] == 0
    assert await socket.receive_nothing(0.5)
    await socket.disconnect()


async def test_charts_socket_refuses_an_unknown_endpoint() -> None:
    user = await sync_to_async(_setup)()
    socket, connected, code = await connect("/ws/endpoints/nope/charts/", user)
    assert not connected and code == 4404
    await socket.disconnect()
