"""Websockets: the consumers authorize, join their group and relay what services announce (real Redis)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser

from apps.endpoints import services
from tests import factories
from tests.ui.sockets import connect as _connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections() -> Any:
    """Consumers and the test's sync code share one worker thread; close its connection so the DB can be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def _served() -> tuple[Any, Any, Any]:
    user = factories.user("alice")
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue")
    return user, endpoint, deployment


async def test_sockets_refuse_a_signed_out_visitor() -> None:
    await sync_to_async(_served)()
    for path in ("/ws/studio/", "/ws/endpoints/ep1/", "/ws/endpoints/ep1/charts/", "/ws/endpoints/ep1/logs/"):
        communicator, connected, code = await _connect(path, AnonymousUser())
        assert not connected and code == 4401, path
        await communicator.disconnect()


async def test_endpoint_socket_refuses_an_unknown_endpoint() -> None:
    user, _, _ = await sync_to_async(_served)()
    communicator, connected, code = await _connect("/ws/endpoints/nope/", user)
    assert not connected and code == 4404
    await communicator.disconnect()


def _scale(deployment: Any, user: Any) -> None:
    from django.db import transaction

    with transaction.atomic():
        services.deployment_scale(deployment=deployment, instance_count=2, reason="test", user=user)


def _traffic(endpoint: Any) -> None:
    services.traffic_set(endpoint=endpoint, traffic={"blue": 100})


async def test_a_state_change_reaches_every_open_page_after_commit() -> None:
    user, endpoint, deployment = await sync_to_async(_served)()
    studio, connected, _ = await _connect("/ws/studio/", user)
    assert connected
    page, connected, _ = await _connect("/ws/endpoints/ep1/", user)
    assert connected
    await sync_to_async(_scale)(deployment, user)
    for communicator in (studio, page):
        message = await communicator.receive_json()
        assert message["type"] == "deployment.state"
        assert message["deployment"] == "blue" and message["state"] == "Scaling" and message["instance_count"] == 2
        assert message["uid"] == str(deployment.uid)
    await sync_to_async(_traffic)(endpoint)
    message = await page.receive_json()
    while message["type"] == "deployment.state":  # scaling writes two timeline entries, each announced
        message = await page.receive_json()
    assert message == {"type": "endpoint.traffic", "endpoint": "ep1", "traffic": {"blue": 100}, "mirror_traffic": {}}
    # Traffic reaches every open page too: the endpoint list shows the split.
    seen = []
    while not await studio.receive_nothing():
        seen.append(await studio.receive_json())
    assert [m for m in seen if m["type"] != "deployment.state"] == [message]
    await studio.disconnect()
    await page.disconnect()


async def test_logs_socket_refuses_an_unknown_container() -> None:
    user, _, _ = await sync_to_async(_served)()
    communicator, connected, code = await _connect("/ws/endpoints/ep1/logs/?container=sidecar", user)
    assert not connected and code == 4400
    await communicator.disconnect()
