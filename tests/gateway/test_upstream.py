"""The gateway's HTTP/1.1 client against small real servers that answer in the less common ways."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.upstream import Unavailable, UpstreamClient
from tests.gateway.conftest import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    port = free_port()
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    return server, f"http://127.0.0.1:{port}"


def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 500 Oops\r\ncontent-type: text/plain\r\n\r\nno length here")
        await writer.drain()
        writer.close()

    async def main() -> None:
        client = UpstreamClient()
        first, chunked_url = await _serve(chunked)
        second, close_url = await _serve(close_delimited)
        async with first, second:
            answers = [await client.request(chunked_url, "POST", b"/score", b"", b"{}", 5) for _ in range(3)]
            closed = await client.request(close_url, "GET", b"/score?a=1", b"x-a: 1\r\n", b"", 5)
        client.close()
        assert [a.body for a in answers] == [b"hello world"] * 3
        assert (closed.status, closed.body) == (500, b"no length here")
        assert (b"content-type", b"text/plain") in closed.headers

    asyncio.run(main())


def test_a_pooled_connection_the_instance_closed_is_replaced_transparently() -> None:
    requests: list[bytes] = []

    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await _read_request(reader))
        # Says keep-alive, then closes anyway (an idle timeout on the instance's side).
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> None:
        client = UpstreamClient()
        server, url = await _serve(one_per_connection)
        async with server:
            for _ in range(3):
                answer = await client.request(url, "POST", b"/score", b"x-request-id: r1\r\n", b"{}", 5)
                assert (answer.status, answer.body) == (200, b"ok")
                await asyncio.sleep(0.05)
        client.close()

    asyncio.run(main())
    assert len(requests) == 3
    assert requests[0].startswith(b"POST /score HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-request-id: r1\r\ncontent-length: 2\r\n\r\n{}" in requests[0]


def test_refused_connections_garbage_and_silence_raise_clear_errors() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SMTP READY\r\n\r\n")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        client = UpstreamClient()
        with pytest.raises(Unavailable, match="cannot connect"):
            await client.request(f"http://127.0.0.1:{free_port()}", "GET", b"/", b"", b"", 5)
        first, garbage_url = await _serve(garbage)
        second, silent_url = await _serve(silent)
        async with first, second:
            with pytest.raises(Unavailable, match="unreadable answer"):
                await client.request(garbage_url, "GET", b"/", b"", b"", 5)
            with pytest.raises(TimeoutError):
                await client.request(silent_url, "GET", b"/", b"", b"", 0.2)
        client.close()

    asyncio.run(main())


def test_connections_to_instances_gone_from_the_table_are_closed() -> None:
    closed: list[bool] = []

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                closed.append(True)  # the client hung up
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def main() -> None:
        client = UpstreamClient()
        server, url = await _serve(keep_alive)
        async with server:
            await client.request(url, "GET", b"/", b"", b"", 5)
            client.retain({url})
            await asyncio.sleep(0.1)
            assert closed == []  # still in the table: the connection stays pooled
            client.retain(set())
            for _ in range(50):
                if closed:
                    break
                await asyncio.sleep(0.02)
        client.close()

    asyncio.run(main())
    assert closed == [True]
