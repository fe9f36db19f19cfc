"""Following a log live: one reader per followed log however many sockets follow it, its last lines on
joining, then each new line as the instance writes it (a real local instance, real Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async

from apps.core.notify import redis_client
from apps.endpoints import reconcile
from apps.endpoints.log_follow import FOLLOWERS, LogStream, new_lines
from apps.endpoints.models import Deployment, Instance
from tests import factories
from tests.endpoints.conftest import envs_dir, local, score  # noqa: F401 (fixtures: a real local backend)
from tests.ui.sockets import Socket, connect

SCORE_PY = """\
import json

def init():
    print("init done")

def run(raw_data):
    print("scored " + json.loads(raw_data)["tag"])
    return {"ok": True}
"""
FOLLOW = "/ws/endpoints/ep1/logs/?deployment=blue&container=inference-server&lines=50"
STREAM = LogStream(endpoint="ep1", deployment="blue", container="inference-server")


def test_new_lines_continue_the_previous_read() -> None:
    assert new_lines(None, ["a", "b"]) == (["a", "b"], True)  # nothing read before: a snapshot
    assert new_lines(["a", "b"], ["a", "b"]) == ([], False)
    assert new_lines(["a", "b"], ["a", "b", "c", "d"]) == (["c", "d"], False)
    # a read holds the last lines only: the window slid by two
    assert new_lines(["a", "b", "c"], ["c", "d", "e"]) == (["d", "e"], False)
    assert new_lines([], ["a"]) == (["a"], False)
    # nothing in common: a new log (a restart) or more new lines than a read holds
    assert new_lines(["a", "b"], ["x", "y"]) == (["x", "y"], True)


@pytest_asyncio.fixture
async def _close_thread_connections() -> Any:
    """Consumers and the test's sync code share one worker thread; close its connection so the DB can be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


def _deploy() -> tuple[Any, str]:
    """ep1/blue on the local backend with one ready instance; the user and the instance's address."""
    user = factories.user("alice")
    code = factories.upload_folder({"score.py": SCORE_PY})
    deployment = factories.deployment(factories.endpoint("ep1"), "blue", code=code)
    deadline = time.monotonic() + 120
    while reconcile.reconcile(deployment.pk) != "Succeeded":
        assert time.monotonic() < deadline, Deployment.objects.get(pk=deployment.pk).message
        time.sleep(0.2)
    address = Instance.objects.get(deployment=deployment, ready=True).address
    return user, address


def _score(address: str, tag: str) -> None:
    assert score(address, {"tag": tag}).status_code == 200


async def _until(socket: Socket, found: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
    """The first message `found` accepts (the log's other lines may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await socket.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        assert message["type"] == "deployment.logs" and message["deployment"] == "blue"
        if found(message):
            return message


def _has(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: any(text in line for line in message["lines"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_thread_connections")
async def test_sockets_following_one_log_share_one_reader_and_get_each_new_line(local: Path) -> None:  # noqa: F811
    user, address = await sync_to_async(_deploy)()

    first, connected, _ = await connect(FOLLOW, user)
    assert connected
    snapshot = await _until(first, lambda message: message["reset"])
    assert any("init done" in line for line in snapshot["lines"])  # the log as it is when following starts
    second, connected, _ = await connect(FOLLOW, user)
    assert connected
    assert (await _until(second, lambda message: message["reset"]))["lines"][-1]  # its own snapshot
    assert FOLLOWERS.following() == {STREAM: 2}  # one reader for both sockets
    assert redis_client().get(STREAM.key) is not None  # and it holds the stream's key for every web process

    await sync_to_async(_score)(address, "first")
    for socket in (first, second):
        appended = await _until(socket, _has("scored first"))
        assert not appended["reset"] and "init done" not in " ".join(appended["lines"])  # only what is new

    await first.disconnect()
    assert FOLLOWERS.following() == {STREAM: 1}
    await sync_to_async(_score)(address, "second")
    await _until(second, _has("scored second"))

    await second.disconnect()
    assert FOLLOWERS.following() == {}  # nobody follows: the reader stopped
    assert redis_client().get(STREAM.key) is None  # and gave the stream up


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_thread_connections")
async def test_logs_socket_refuses_an_unknown_deployment() -> None:
    def setup() -> Any:
        user = factories.user("alice")
        factories.deployment(factories.endpoint("ep1"), "blue")
        return user

    user = await sync_to_async(setup)()
    socket, connected, code = await connect("/ws/endpoints/ep1/logs/?deployment=nope", user)
    assert not connected and code == 4404
    await socket.disconnect()
    assert FOLLOWERS.following() == {}
