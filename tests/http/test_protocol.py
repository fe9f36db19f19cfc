"""HTTP/1.1 edge cases, the same tests against both servers (runtime/http11.py is their shared core).

Each test runs twice: against `python -m runtime` and against `python -m gateway` (routing to that runtime).
Requests are written by hand on raw sockets, since the point is what an unusual or hostile client sends.
"""

from __future__ import annotations

import json
import socket
import time
from typing import BinaryIO

import pytest

from tests.http.conftest import DEADLINES, Target

HEAD_TIMEOUT_S = float(DEADLINES["head_timeout_s"])
WAIT_S = 30  # a generous bound on waiting for a deadline to act; nothing here asserts how fast it acts


def read_answer(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
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


def closed(sock: socket.socket, stream: BinaryIO) -> bool:
    """True when the server closes the connection (within WAIT_S) without sending anything more."""
    sock.settimeout(WAIT_S)
    try:
        return stream.read(1) == b""
    except ConnectionResetError:
        return True


def exchange(server: Target, data: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send `data` on a fresh connection: the first answer, and whether the server then closed."""
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        status, headers, body = read_answer(stream)
        return status, headers, body, closed(sock, stream)


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: Target) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(server.score(b"a") + server.score(b"bb") + server.score(b"ccc"))
        answers = [read_answer(stream) for _ in range(3)]

    assert [(status, json.loads(body)["data"]) for status, _, body in answers] == [
        (200, "a"),
        (200, "bb"),
        (200, "ccc"),
    ]


def test_a_large_body_then_a_pipelined_head_in_one_read_is_not_taken_for_a_large_head(server: Target) -> None:
    first = server.score(b"b" * (70 * 1024))  # past the head limit, and likely to arrive in one read
    second = server.score(b"next")
    split = first.index(b"\r\n\r\n")  # the first write ends inside the first head
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(first[:split])
        time.sleep(0.2)  # so that the server reads it on its own, before the rest
        sock.sendall(first[split:] + second[:30])
        time.sleep(0.2)
        sock.sendall(second[30:])
        answers = [read_answer(stream) for _ in range(2)]

    assert [status for status, _, _ in answers] == [200, 200]
    assert json.loads(answers[0][2])["length"] == 70 * 1024
    assert json.loads(answers[1][2])["data"] == "next"


def test_a_chunked_body_arrives_whole(server: Target) -> None:
    chunks = b"4\r\nabcd\r\n1\r\ne\r\n3\r\nfgh\r\n0\r\n\r\n"
    status, _, body, _ = exchange(server, server.score(chunks, "Transfer-Encoding: chunked", "Connection: close"))

    assert status == 200
    assert json.loads(body) == {"length": 8, "data": "abcdefgh"}


def test_expect_100_continue_gets_an_interim_answer_before_the_body(server: Target) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        request = server.score(b"hello", "Expect: 100-continue")
        sock.sendall(request[:-5])
        assert stream.readline().startswith(b"HTTP/1.1 100")
        assert stream.readline() == b"\r\n"
        sock.sendall(b"hello")
        status, _, body = read_answer(stream)

    assert status == 200
    assert json.loads(body)["length"] == 5


def test_content_length_with_transfer_encoding_is_refused_and_nothing_is_smuggled(server: Target) -> None:
    # A front proxy that trusts Content-Length would see one request; one that trusts chunked, two.
    smuggled = f"GET {server.score_path} HTTP/1.1\r\nHost: server\r\n\r\n".encode()
    body = b"0\r\n\r\n" + smuggled
    request = server.score(body, f"Content-Length: {len(body)}", "Transfer-Encoding: chunked")

    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(request)
        status, headers, _ = read_answer(stream)
        was_closed = closed(sock, stream)

    assert status == 400
    assert headers["connection"] == "close"
    assert was_closed  # and so no second answer: the smuggled request was never read


def test_two_different_content_lengths_are_refused(server: Target) -> None:
    status, _, _, was_closed = exchange(server, server.score(b"abcd", "Content-Length: 4", "Content-Length: 3"))

    assert status == 400
    assert was_closed


@pytest.mark.parametrize(
    "request_line",
    [b"\x16\x03\x01 not http at all", b"GET", b"GET /score HTTP/1.1 extra", b"G\x00T /score HTTP/1.1"],
    ids=["tls-hello", "no-target", "extra-word", "nul-in-method"],
)
def test_a_bad_request_line_is_400_and_the_server_goes_on_serving(server: Target, request_line: bytes) -> None:
    status, headers, _, was_closed = exchange(server, request_line + b"\r\nHost: server\r\n\r\n")
    after = exchange(server, server.score(b"ok", "Connection: close"))

    assert status == 400
    assert headers["connection"] == "close"
    assert was_closed
    assert after[0] == 200


def test_a_request_target_longer_than_the_limit_is_414(server: Target) -> None:
    long_path = server.score_path + "?q=" + "x" * (8 * 1024)
    status, headers, body, was_closed = exchange(server, server.score(b"", path=long_path))

    assert status == 414
    assert b"8192" in body
    assert headers["connection"] == "close"
    assert was_closed


def test_a_head_larger_than_the_limit_is_431(server: Target) -> None:
    # 40 headers of 2 KiB: within the header count, past the 64 KiB head.
    big = [f"X-Big-{n}: {'v' * 2048}" for n in range(40)]
    one_giant = ["X-Giant: " + "g" * (100 * 1024)]  # a single header line that never ends within the limit

    for extra in (big, one_giant):
        status, headers, body, was_closed = exchange(server, server.score(b"", *extra, authorized=False))
        assert status == 431
        assert b"65536" in body
        assert headers["connection"] == "close"
        assert was_closed


def test_more_header_fields_than_the_limit_is_431(server: Target) -> None:
    many = [f"X-H{n}: 1" for n in range(101)]
    status, _, body, was_closed = exchange(server, server.score(b"", *many, authorized=False))
    within = exchange(server, server.score(b"ok", *many[:90], "Connection: close"))

    assert status == 431
    assert b"100" in body
    assert was_closed
    assert within[0] == 200


def test_a_half_sent_head_is_answered_408_and_closed(server: Target) -> None:
    request = server.score(b"{}")
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(request[:25])  # part of the request line, then nothing
        sock.settimeout(WAIT_S)
        status, headers, body = read_answer(stream)
        was_closed = closed(sock, stream)

    assert status == 408
    assert b"head" in body
    assert headers["connection"] == "close"
    assert was_closed


def test_a_head_trickled_byte_by_byte_is_cut_at_the_head_deadline(server: Target) -> None:
    # Every byte arrives well within any idle timeout, but the whole head never does: the deadline runs from
    # the request's first byte, not from the last byte received.
    request = server.score(b"{}", *[f"X-Pad-{n}: {'p' * 50}" for n in range(20)])
    answer = b""
    with server.connect() as sock:
        sock.settimeout(0.05)
        for byte in request[:-10]:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # the server closed: what it said is read below
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break

    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert f"did not arrive within {HEAD_TIMEOUT_S:g} s".encode() in answer


def test_a_body_slower_than_its_deadline_is_answered_408_and_closed(server: Target) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(server.score(b"x" * 100)[:-90])  # the whole head, 10 of the 100 body bytes
        sock.settimeout(WAIT_S)
        status, headers, body = read_answer(stream)
        was_closed = closed(sock, stream)

    assert status == 408
    assert b"body" in body
    assert headers["connection"] == "close"
    assert was_closed


def test_an_idle_keep_alive_connection_is_closed_without_an_answer(server: Target) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(server.score(b"one"))
        status, _, _ = read_answer(stream)
        was_closed = closed(sock, stream)  # nothing is sent after the answer

    assert status == 200
    assert was_closed


def test_an_upgrade_request_is_answered_as_a_plain_one_and_the_connection_ends(server: Target) -> None:
    upgrade = server.score(b"", "Connection: Upgrade", "Upgrade: websocket")
    status, headers, body, was_closed = exchange(server, upgrade + b"\x81\x05hello")  # and a websocket frame

    assert status == 200  # not 101: neither server switches protocols
    assert json.loads(body)["length"] == 0
    assert "upgrade" not in headers
    assert was_closed
