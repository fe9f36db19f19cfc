"""Websockets on the real channel layer (Redis), served by uvicorn as `studio up` serves them: a socket that
receives nothing for longer than the layer's blocking Redis read stays open, and closing it ends its consumer
at once and prints nothing.

Before apps/core/channel_layer.py, redis-py's 5 s socket timeout raced channels_redis's 5 s BZPOPMIN (a quiet
socket died with `redis.exceptions.TimeoutError`), and a closed socket's cancelled receive could go on reading
(Python 3.11's `asyncio.wait_for` in redis-py's send lost the cancellation) until it timed out: uvicorn printed
"Exception in ASGI application", `StopConsumer` then that TimeoutError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from django.conf import settings
from django.test import Client

from apps.core import broadcast
from tests import factories
from tests.e2e.conftest import _free_port

WAIT_MS = 200  # the layer's blocking read, shortened: each socket below outlives several of them
IDLE_S = 1.0


def test_the_layers_connections_have_no_socket_timeout_to_race_its_blocking_wait() -> None:
    """As shipped (a 5 s wait, too long for the test below): nothing on the connection times a read out first."""
    from channels.layers import get_channel_layer

    layer: Any = get_channel_layer()
    assert layer.brpop_timeout == settings.STUDIO_CHANNEL_WAIT_MS / 1000 == 5
    assert layer.create_pool(0).connection_kwargs["socket_timeout"] is None


@pytest.fixture
def web(transactional_db: None, settings: Any) -> Iterator[Any]:
    """studio.asgi served by uvicorn in a thread (its log records reach caplog), the layer's wait shortened."""
    import uvicorn

    from studio.asgi import application

    settings.CHANNEL_LAYERS = {
        "default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {
            **settings.CHANNEL_LAYERS["default"]["CONFIG"], "wait_s": WAIT_MS / 1000}},
    }  # fmt: skip
    port = _free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off", log_config=None, ws="auto")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"web-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield server
    server.should_exit = True
    thread.join(timeout=20)
    assert not thread.is_alive(), "uvicorn did not stop"


def _session_cookie() -> str:
    client = Client()
    client.force_login(factories.user("alice", role="reader"))
    return f"sessionid={client.cookies['sessionid'].value}"


async def _browse(host: str, cookie: str, paths: list[str]) -> list[str]:
    """Open a socket per path, let them idle past several blocking reads, receive a push, close them all."""
    headers = {"Cookie": cookie, "Origin": f"http://{host}"}
    sockets = [await websockets.connect(f"ws://{host}{path}", additional_headers=headers) for path in paths]
    await asyncio.sleep(IDLE_S)  # several of the layer's blocking reads (WAIT_MS) with nothing to receive
    await asyncio.to_thread(broadcast.send, broadcast.STUDIO_GROUP, _state())
    pushed = json.loads(await asyncio.wait_for(sockets[0].recv(), 10))
    for socket in sockets:
        await asyncio.wait_for(socket.close(), 10)
    return [pushed["deployment"], *(str(socket.close_code) for socket in sockets)]


def _state() -> broadcast.DeploymentStatePayload:
    return {
        "type": "deployment.state", "endpoint": "ep1", "deployment": "blue", "uid": "0", "state": "Succeeded",
        "reason": "", "message": "", "ready_instances": 1, "instance_count": 1,
    }  # fmt: skip


def test_quiet_sockets_stay_open_and_close_without_a_traceback(web: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cookie = _session_cookie()
    factories.endpoint("ep1")
    paths = ["/ws/studio/", "/ws/endpoints/ep1/", "/ws/endpoints/ep1/charts/"] * 4

    seen = asyncio.run(_browse(f"127.0.0.1:{web.config.port}", cookie, paths))
    deadline = time.monotonic() + 20  # generous (a busy machine): a lost cancellation would never end
    while web.server_state.connections or web.server_state.tasks:
        assert time.monotonic() < deadline, f"consumers still running after their sockets closed: {caplog.text}"
        time.sleep(0.02)

    assert seen == ["blue", *["1000"] * len(paths)]  # still open after idling, then closed normally by the page
    loud = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text and "TimeoutError" not in caplog.text
