"""Bounded clients cannot exhaust either server: a header flood, a crowd of slow clients, too many connections.

Each test runs against `python -m runtime` and against `python -m gateway`, as real processes. Memory is
read with psutil (the process' resident set); nothing here asserts how fast anything happens.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import psutil

from tests.http.conftest import Target
from tests.http.test_protocol import WAIT_S, closed, exchange, read_answer

FLOOD_BYTES = 64 * 1024 * 1024
MAX_GROWTH_BYTES = 20 * 1024 * 1024


def _rss(target: Target) -> int:
    return int(psutil.Process(target.proc.pid).memory_info().rss)


def _flood(target: Target) -> tuple[bytes, int]:
    """Send a 64 MB request head (about 4.7 million short headers), no key; what came back and bytes sent."""
    line = b"X-Flood: 12345\r\n"
    block = line * (1024 * 1024 // len(line))
    answer = bytearray()
    sent = 0
    with target.connect() as sock:
        sock.settimeout(WAIT_S)

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    answer.extend(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(f"POST {target.score_path} HTTP/1.1\r\nHost: server\r\n".encode())
            while sent < FLOOD_BYTES:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the server stopped reading and closed: it had answered long before
        reader.join(timeout=WAIT_S)
    return bytes(answer), sent


def test_a_64_mb_header_flood_gets_431_and_costs_the_server_little_memory(server: Target) -> None:
    exchange(server, server.score(b"warm", "Connection: close"))  # pools, caches and lazy imports in place
    before = _rss(server)

    answer, _ = _flood(server)
    after = _rss(server)
    served = exchange(server, server.score(b"after", "Connection: close"))

    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert after - before < MAX_GROWTH_BYTES, f"RSS grew from {before / 2**20:.1f} MiB to {after / 2**20:.1f} MiB"
    assert served[0] == 200


def test_500_slow_clients_do_not_stop_a_normal_client_and_are_cut(server: Target) -> None:
    head = server.score(b"{}")
    slow: list[socket.socket] = []
    try:
        for _ in range(500):
            sock = server.connect()
            sock.sendall(head[:20])  # the start of a request line; the rest trickles below
            slow.append(sock)
        stop = threading.Event()

        def trickle() -> None:
            position = 20
            while not stop.is_set() and position < len(head) - 1:
                for sock in slow:
                    try:
                        sock.send(head[position : position + 1])
                    except OSError:
                        pass
                position += 1
                stop.wait(0.2)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        answers = [
            exchange(server, server.score(json.dumps({"n": n}).encode(), "Connection: close")) for n in range(20)
        ]
        stop.set()
        trickler.join(timeout=WAIT_S)

        cut = 0
        for sock in slow:
            sock.settimeout(WAIT_S)
            with sock.makefile("rb") as stream:
                try:
                    status, _, _ = read_answer(stream)
                except (AssertionError, OSError):
                    continue
                cut += status == 408 and closed(sock, stream)
    finally:
        for sock in slow:
            sock.close()

    assert [status for status, *_ in answers] == [200] * 20
    assert [json.loads(body)["data"] for _, _, body, _ in answers] == [json.dumps({"n": n}) for n in range(20)]
    assert cut == 500  # every slow client got its 408 and its connection closed


def test_connections_beyond_the_cap_get_503_without_being_read(start_server: Callable[..., Target]) -> None:
    server = start_server(max_connections="3")
    held = [server.connect() for _ in range(3)]
    try:
        for sock in held:  # each is being served, so each holds its place
            sock.sendall(server.score(b"held"))
            with sock.makefile("rb") as stream:
                assert read_answer(stream)[0] == 200
        status, headers, body, was_closed = exchange(server, server.score(b"one too many"))
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + WAIT_S
    while True:  # the places free up once the server has seen the closes
        after = exchange(server, server.score(b"again", "Connection: close"))
        if after[0] == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert status == 503
    assert b"3 open connections" in body
    assert headers["connection"] == "close"
    assert was_closed
    assert after[0] == 200
