"""A websocket client speaking ASGI to the studio's router, for consumer tests (real channel layer on Redis)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from asgiref.testing import ApplicationCommunicator

from studio.routing import websocket_urlpatterns

APPS = Path(__file__).resolve().parents[2] / "apps"


def _app() -> Any:
    from channels.routing import URLRouter

    return URLRouter(websocket_urlpatterns)


class Socket:
    """One browser socket (channels.testing needs daphne, which we do not ship)."""

    def __init__(self, path: str, user: Any) -> None:
        path, _, query = path.partition("?")
        scope = {"type": "websocket", "path": path, "query_string": query.encode(), "headers": [], "user": user}
        self.app = ApplicationCommunicator(_app(), scope)

    async def connect(self) -> tuple[bool, int | None]:
        await self.app.send_input({"type": "websocket.connect"})
        answer = await self.app.receive_output(5)
        return answer["type"] == "websocket.accept", answer.get("code")

    async def receive_json(self, timeout: float = 5) -> Any:
        answer = await self.app.receive_output(timeout)
        assert answer["type"] == "websocket.send", answer
        return json.loads(answer["text"])

    async def receive_nothing(self, timeout: float = 0.3) -> bool:
        return await self.app.receive_nothing(timeout)

    async def disconnect(self) -> None:
        await self.app.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.app.wait(1)


async def connect(path: str, user: Any) -> tuple[Socket, bool, int | None]:
    socket = Socket(path, user)
    connected, code = await socket.connect()
    return socket, connected, code


def studio_tasks() -> list[str]:
    """Tasks of the running event loop whose coroutine is the studio's own code (a consumer's timer would be)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and Path(code.co_filename).is_relative_to(APPS):
            found.append(f"{code.co_filename}:{code.co_name}")
    return found
