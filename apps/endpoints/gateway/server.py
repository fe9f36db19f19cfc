"""A lean HTTP/1.1 protocol that serves the gateway's ASGI application under uvicorn's server.

uvicorn keeps what it is good at (sockets, workers, signals, lifespan, graceful shutdown); this class
replaces its per-request machinery, which on the 2-core development machine cost about as much as the
gateway's own work: a header regex per header, an Event and a timer per request, and the status line and
body leaving in two writes. Here a request costs one parser pass, one small scope dict and one task, and an
answer leaves in one write. The application is trusted (it is the gateway): header values are only checked
for line breaks.

    uvicorn apps.endpoints.gateway.app:application --loop uvloop \
        --http apps.endpoints.gateway.server:GatewayHttpProtocol
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

logger = logging.getLogger("uvicorn.error")

ASGI = {"version": "3.0", "spec_version": "2.3"}
STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()) for status in HTTPStatus}
HIGH_WATER = 256 * 1024  # request body bytes buffered before reading pauses
DISCONNECT = {"type": "http.disconnect"}


class _Request:
    """One request on a connection: its scope, the body as it arrives, and the answer's progress."""

    __slots__ = (
        "scope",
        "chunks",
        "buffered",
        "complete",
        "waiter",
        "keep_alive",
        "expect_continue",
        "started",
        "finished",
        "head",
        "chunked",
    )

    def __init__(self, scope: dict[str, Any], keep_alive: bool, expect_continue: bool) -> None:
        self.scope = scope
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.started = False
        self.finished = False
        self.head = b""
        self.chunked = False

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class GatewayHttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining (answered in order) for one ASGI application."""

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.keep_alive_s: float = config.timeout_keep_alive
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.current: _Request | None = None  # the request being answered
        self.pipeline: deque[_Request] = deque()  # requests read while an earlier one is answered
        self.parsing: _Request | None = None  # the request whose body is being read
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.reading_paused = False
        self.closed = False
        self.idle_since = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        self.idle_since = 0.0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "the gateway does not upgrade connections")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"invalid HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        for request in (self.current, self.parsing, *self.pipeline):
            if request is not None:
                request.wake()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        raw_path, _, query = self.url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": version,
            "method": parser.get_method().decode("ascii"),
            "scheme": self.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": self.headers,
            "server": self.server,
            "client": self.client,
            "state": self.app_state.copy(),
        }
        expect = any(name == b"expect" and value.lower() == b"100-continue" for name, value in self.headers)
        request = _Request(scope, parser.should_keep_alive(), expect)
        self.parsing = request
        if self.current is None:
            self._start(request)
        else:
            self.pipeline.append(request)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None or request.finished:
            return
        request.chunks.append(body)
        request.buffered += len(body)
        if request.buffered > HIGH_WATER:
            self._pause_reading()
        request.wake()

    def on_message_complete(self) -> None:
        request = self.parsing
        if request is not None:
            request.complete = True
            request.wake()
            if request.finished and request is self.current:
                self._next()

    # --- serving ---

    def _start(self, request: _Request) -> None:
        self.current = request
        task = self.loop.create_task(self._run(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, request: _Request) -> None:
        async def receive() -> dict[str, Any]:
            return await self._receive(request)

        async def send(message: dict[str, Any]) -> None:
            self._send(request, message)

        try:
            await self.app(request.scope, receive, send)
        except Exception:
            logger.exception("the gateway application failed")
            if not request.started:
                self._send_error(request, 500, "Internal Server Error")
            else:
                self._close()
            return
        if not request.finished and not self.closed:
            logger.error("the gateway application returned without a complete answer")
            if not request.started:
                self._send_error(request, 500, "Internal Server Error")
            else:
                self._close()

    async def _receive(self, request: _Request) -> dict[str, Any]:
        if request.expect_continue and not self.closed:
            request.expect_continue = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        while not request.chunks and not request.complete:
            if self.closed or request.finished:
                return DISCONNECT
            self._resume_reading()
            request.waiter = self.loop.create_future()
            await request.waiter
            request.waiter = None
        if self.closed and not request.complete:
            return DISCONNECT
        chunks, request.chunks, request.buffered = request.chunks, [], 0
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.reading_paused and self.parsing is request:
            self._resume_reading()
        return {"type": "http.request", "body": body, "more_body": not request.complete}

    def _send(self, request: _Request, message: dict[str, Any]) -> None:
        if self.closed or request.finished:
            return
        kind = message["type"]
        if not request.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            request.started = True
            request.expect_continue = False
            request.head = self._head(request, message["status"], message.get("headers", ()))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind}")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if request.scope["method"] == "HEAD":
            body = b""
        elif request.chunked:
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (b"" if more else b"0\r\n\r\n")
        data = request.head + body if request.head else body
        request.head = b""
        if data:
            self.transport.write(data)  # type: ignore[union-attr]
        if not more:
            self._finished(request)

    def _head(self, request: _Request, status: int, headers: Any) -> bytes:
        lines = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        framed = False
        for name, value in headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise RuntimeError(f"header {name!r} holds a line break")
            lowered = name.lower()
            if lowered == b"content-length":
                framed = True
            elif lowered == b"transfer-encoding":
                continue  # the framing is this server's to choose
            elif lowered == b"connection" and b"close" in value.lower():
                request.keep_alive = False
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        if not framed and status not in (204, 304) and request.scope["method"] != "HEAD":
            request.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        if not request.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _finished(self, request: _Request) -> None:
        request.finished = True
        if not request.keep_alive:
            self._close()
        elif request.complete:
            self._next()
        else:
            # Answered before the whole body arrived (413): the rest is read and dropped, then the next request.
            self._resume_reading()

    def _next(self) -> None:
        self.current = None
        if self.pipeline:
            self._resume_reading()
            self._start(self.pipeline.popleft())
        else:
            self.idle_since = self.loop.time()

    def _send_error(self, request: _Request, status: int, text: str) -> None:
        request.keep_alive = False
        body = text.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        self._send(request, {"type": "http.response.start", "status": status, "headers": headers})
        self._send(request, {"type": "http.response.body", "body": body})

    def _refuse(self, status: int, text: str) -> None:
        """Answer a request the parser could not read, and close."""
        if self.transport is None or self.closed:
            return
        body = text.encode()
        self.transport.write(
            STATUS_LINES[status]
            + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self._close()

    # --- flow control and idle connections ---

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _arm_idle_timer(self) -> None:
        """One timer per connection (not per request) closes it once idle for `timeout_keep_alive` seconds."""
        self.idle_since = self.loop.time()
        self.idle_timer = self.loop.call_later(self.keep_alive_s, self._check_idle)

    def _check_idle(self) -> None:
        if self.closed:
            return
        if self.idle_since and self.loop.time() - self.idle_since >= self.keep_alive_s and self.current is None:
            self._close()
            return
        since = self.idle_since or self.loop.time()
        self.idle_timer = self.loop.call_at(since + self.keep_alive_s, self._check_idle)

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def shutdown(self) -> None:
        """Called by uvicorn on a graceful shutdown: close now when idle, else after the current answer."""
        if self.current is None:
            self._close()
        else:
            self.current.keep_alive = False
            self.pipeline.clear()

    # uvicorn's flow control asks these of every protocol
    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
