"""The HTTP layer as clients meet it: pipelining, large bodies, HTTP/1.0, garbage, HEAD, streamed generators."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from tests.runtime.conftest import Server

SCRIPT = """
    import os

    def init():
        pass

    def run(data):
        if data == "generator":
            return (f"part{i}\\n" for i in range(3))
        if data == "die":
            os._exit(1)
        return {"length": len(data), "pid": os.getpid()}
"""


@pytest.fixture
def server(start_runtime) -> Server:
    return start_runtime(SCRIPT)


def _raw(server: Server, payload: bytes, *, until: bytes | None = None, count: int = 1) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if until is not None and data.count(until) >= count:
                return data


def test_pipelined_requests_on_one_connection_are_answered_in_order(server: Server) -> None:
    one = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
    two = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    three = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = _raw(server, one + two + three)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b'"length": 1') < data.index(b'"length": 3') < data.index(b"Healthy")


def test_large_body_arrives_whole(server: Server) -> None:
    body = "x" * (4 * 1024 * 1024)
    answer = server.request("POST", "/score", body)
    assert answer.status == 200
    assert answer.json()["length"] == len(body)


def test_http_1_0_client_gets_the_answer_and_the_connection_closes(server: Server) -> None:
    data = _raw(server, b"POST /score HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in data
    assert data.endswith(b'"pid": ' + str(server.proc.pid).encode() + b"}")


def test_garbage_gets_400_and_the_server_keeps_serving(server: Server) -> None:
    data = _raw(server, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request")
    assert server.get("/").text == "Healthy"


def test_head_on_score_is_405_as_in_azmlinfsrv(server: Server) -> None:
    data = _raw(server, b"HEAD /score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 405 Method Not Allowed")
    assert data.endswith(b"\r\n\r\n")  # no body on HEAD


def test_generator_returned_by_run_is_streamed(server: Server) -> None:
    answer = server.request("POST", "/score", "generator")
    assert answer.status == 200
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.text == "part0\npart1\npart2\n"
    assert "POST /score 200" in server.wait_for_log("POST /score 200") and " N/A" in server.log()


def test_expect_100_continue_gets_an_interim_answer(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert b'"length": 5' in sock.recv(65536)


def test_absolute_form_request_target_is_routed(server: Server) -> None:
    data = _raw(server, b"GET http://127.0.0.1/swagger.json?version=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b'"openapi": "3.0.3"' in data


def test_percent_encoded_path_is_routed(server: Server) -> None:
    assert server.request("POST", "/sc%6Fre", "abc").json()["length"] == 3


def test_worker_that_dies_is_replaced(start_runtime) -> None:
    server = start_runtime(SCRIPT, args=["--worker_count", "2"])
    _wait_until(lambda: server.log().count("ready for serving traffic") == 2)
    with pytest.raises((ConnectionError, OSError, json.JSONDecodeError)):
        for _ in range(10):  # a request lands on either worker; the one that gets it dies without answering
            server.request("POST", "/score", "die", timeout=5)
    _wait_until(lambda: server.log().count("ready for serving traffic") == 3)
    assert "exited with code 1; starting a new one." in server.log()
    assert server.request("POST", "/score", "ok").status == 200


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
