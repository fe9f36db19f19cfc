"""Websockets: each role joins the sockets it may; a refused one is closed with 4403 and the role it needs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.accounts.conftest import LABEL, RANK, ROLES_AND_NONE
from tests.ui.sockets import Socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


SOCKET_ACTIONS = [
    ("/ws/studio/", "reader"),
    ("/ws/endpoints/ep1/", "reader"),
    ("/ws/endpoints/ep1/logs/?deployment=blue", "operator"),
]


async def _join(path: str, user: Any) -> tuple[bool, dict[str, Any] | None]:
    """Whether the socket stays open, else the close message."""
    socket = Socket(path, user)
    accepted, code = await socket.connect()
    if not accepted:
        return False, {"type": "websocket.close", "code": code, "reason": ""}
    closing = None
    while closing is None and not await socket.receive_nothing(0.2):
        message = await socket.app.receive_output(1)
        closing = message if message["type"] == "websocket.close" else None  # a send (log lines) means joined
    await socket.disconnect()
    return closing is None, closing


async def test_websockets_let_each_role_join_what_it_may_and_close_with_the_role_it_needs(
    people: dict[str | None, Any], served: Any
) -> None:
    for path, needed in SOCKET_ACTIONS:
        for role in ROLES_AND_NONE:
            stays, closing = await _join(path, people[role])
            if RANK[role] >= RANK[needed]:
                assert stays, (path, role, closing)
            else:
                assert closing is not None and closing["code"] == 4403, (path, role, closing)
                assert f"needs the {LABEL[needed] if role else 'Reader'} role" in closing["reason"], (
                    path,
                    role,
                    closing,
                )


def _set_variables(endpoint: Any) -> None:
    from django.db import transaction

    from apps.endpoints import services
    from apps.endpoints.models import Deployment

    with transaction.atomic():
        blue = Deployment.objects.get(endpoint=endpoint, name="blue")
        services.deployment_update(deployment=blue, changes={"environment_variables": {"DB_PASSWORD": "hunter2"}})


async def test_what_a_change_of_variables_pushes_to_a_readers_pages_holds_no_value(
    people: dict[str | None, Any], served: Any
) -> None:
    pages = [Socket(path, people["reader"]) for path in ("/ws/studio/", "/ws/endpoints/ep1/")]
    for page in pages:
        assert (await page.connect())[0]
    await database_sync_to_async(_set_variables)(served)
    for page in pages:
        pushed = [await page.receive_json()]
        while not await page.receive_nothing():
            pushed.append(await page.receive_json())
        assert {m["type"] for m in pushed} >= {"deployment.state"}, pushed
        assert "hunter2" not in json.dumps(pushed)
        await page.disconnect()
