"""The gateway's own HTTP/1.1 protocol (server.py), spoken to over raw sockets as clients do.

Keep-alive, pipelining, `Expect: 100-continue`, chunked request bodies, bodies refused before they
arrive, malformed requests, `Connection: close`, HTTP/1.0 and idle connections being closed.
"""

from __future__ import annotations

import json
import socket
import time
from typing import BinaryIO

from tests.gateway.conftest import make_deployment, make_endpoint, set_traffic


def _connect(gateway) -> tuple[socket.socket, BinaryIO]:  # noqa: ANN001
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    return sock, sock.makefile("rb")


def _read_answer(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One answer: status, headers (lower-case names), body (Content-Length or chunked)."""
    status_line = stream.readline()
    assert status_line, "the connection closed before an answer"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, stream.read(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while size := int(stream.readline().strip(), 16):
            body += stream.read(size)
            stream.readline()
        stream.readline()
    return status, headers, body


def _closed(sock: socket.socket, stream: BinaryIO, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    return stream.read(1) == b""


def _serving(gateway, start_instance):  # noqa: ANN001, ANN202
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)
    return ep, blue


def _score(ep, body: bytes, *extra: str) -> bytes:  # noqa: ANN001
    lines = [
        "POST /endpoints/ep1/score HTTP/1.1",
        "Host: gateway",
        f"Authorization: Bearer {ep.primary_key}",
        "Content-Type: application/json",
        *extra,
    ]
    if not any(line.lower().startswith("transfer-encoding") for line in extra):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_one_connection_serves_requests_one_after_another_and_pipelined(start_instance, gateway) -> None:
    ep, blue = _serving(gateway, start_instance)
    sock, stream = _connect(gateway)
    with sock:
        sock.sendall(_score(ep, b'{"n": 1}'))
        first = _read_answer(stream)
        # Three requests in one write: answered in order, on the same connection.
        sock.sendall(b"".join(_score(ep, json.dumps({"n": n}).encode()) for n in (2, 3, 4)))
        rest = [_read_answer(stream) for _ in range(3)]

    assert first[0] == 200 and json.loads(first[2])["echo"] == {"n": 1}
    assert [(status, json.loads(body)["echo"]["n"]) for status, _, body in rest] == [(200, 2), (200, 3), (200, 4)]
    assert len({headers["x-request-id"] for _, headers, _ in [first, *rest]}) == 4
    assert blue.scored() == 4


def test_expect_100_continue_and_a_chunked_body(start_instance, gateway) -> None:
    ep, _ = _serving(gateway, start_instance)
    sock, stream = _connect(gateway)
    with sock:
        head = _score(ep, b"", "Expect: 100-continue", "Transfer-Encoding: chunked")
        sock.sendall(head)
        interim = stream.readline()
        assert stream.readline() == b"\r\n"
        sock.sendall(b'5\r\n{"n":\r\n3\r\n 7}\r\n0\r\n\r\n')
        status, headers, body = _read_answer(stream)

    assert interim.startswith(b"HTTP/1.1 100")
    assert status == 200
    assert json.loads(body)["echo"] == {"n": 7}
    assert headers["azureml-model-deployment"] == "blue"


def test_a_body_refused_by_its_length_leaves_the_connection_usable(start_instance, start_gateway) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    ep, blue = _serving(gateway, start_instance)
    sock, stream = _connect(gateway)
    with sock:
        big = b'{"data": "' + b"x" * 5000 + b'"}'
        request = _score(ep, big)
        sock.sendall(request[: len(request) - len(big) + 100])  # the head and the start of the body
        refused = _read_answer(stream)
        sock.sendall(request[len(request) - len(big) + 100 :])  # the rest arrives after the answer
        sock.sendall(_score(ep, b'{"n": 9}'))
        after = _read_answer(stream)

    assert refused[0] == 413
    assert "1000 bytes" in json.loads(refused[2])["error"]["message"]
    assert after[0] == 200 and json.loads(after[2])["echo"] == {"n": 9}
    assert blue.scored() == 1


def test_a_malformed_request_is_400_and_the_connection_closes(gateway) -> None:
    sock, stream = _connect(gateway)
    with sock:
        sock.sendall(b"POST /endpoints/ep1/score HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        status, headers, body = _read_answer(stream)
        closed = _closed(sock, stream)

    assert status == 400
    assert body.startswith(b"invalid HTTP request")
    assert headers["connection"] == "close"
    assert closed


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(gateway) -> None:
    for request in (
        b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
        b"GET /metrics HTTP/1.0\r\n\r\n",
    ):
        sock, stream = _connect(gateway)
        with sock:
            sock.sendall(request)
            status, headers, body = _read_answer(stream)
            assert status == 200
            assert b"studio_gateway_routing_reloads_total" in body
            assert headers["connection"] == "close"
            assert _closed(sock, stream)


def test_a_connection_is_kept_between_requests_and_closed_once_idle(start_gateway) -> None:
    gateway = start_gateway(keep_alive_s=1)
    sock, stream = _connect(gateway)
    with sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert _read_answer(stream)[0] == 200
        sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: gateway\r\n\r\n")
        status, headers, _ = _read_answer(stream)
        assert status == 404 and headers.get("connection") != "close"
        began = time.monotonic()
        assert _closed(sock, stream, timeout=60)  # by the gateway, after keep_alive_s of silence
        print(f"an idle connection was closed after {time.monotonic() - began:.2f} s (keep_alive_s=1)")


def test_a_large_body_arrives_whole_and_its_answer_leaves_whole(start_instance, gateway) -> None:
    ep, _ = _serving(gateway, start_instance)
    data = "z" * (3 * 1024 * 1024)  # well past the 256 KiB at which reading pauses until the app takes the body
    sock, stream = _connect(gateway)
    with sock:
        sock.sendall(_score(ep, json.dumps({"data": data}).encode()))
        status, _, body = _read_answer(stream)

    assert status == 200
    assert json.loads(body)["echo"]["data"] == data
