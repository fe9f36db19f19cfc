"""A lean HTTP/1.1 protocol that serves the gateway's ASGI application under uvicorn's server.

Parsing and the limits every client connection is held to (request line, head size, header count, head and
body deadlines, keep-alive, open connections) are `runtime/http11.py`'s, which the inference server shares.

uvicorn keeps what it is good at (sockets, workers, signals, lifespan, graceful shutdown); this class
replaces its per-request machinery, which on the 2-core development machine cost about as much as the
gateway's own work: a header regex per header, an Event and a timer per request, and the status line and
body leaving in two writes. Here a request costs one parser pass, one small scope dict and one task, and an
answer leaves in one write. The application is trusted (it is the gateway): header values are only checked
for line breaks.

    uvicorn gateway.app:application --loop uvloop --http gateway.server:GatewayHttpProtocol
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import cache
from typing import Any
from urllib.parse import unquote

from gateway.config import GatewaySettings
from runtime.http11 import BODY, HttpConnection, Limits, split_target, status_line

logger = logging.getLogger("uvicorn.error")

ASGI = {"version": "3.0", "spec_version": "2.3"}
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
        "may_continue",
        "started",
        "finished",
        "head",
        "chunked",
    )

    def __init__(self, scope: dict[str, Any], keep_alive: bool) -> None:
        self.scope = scope
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = keep_alive
        self.may_continue = True  # a 100 Continue may still be owed (looked up when the body is awaited)
        self.started = False
        self.finished = False
        self.head = b""
        self.chunked = False

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class GatewayHttpProtocol(HttpConnection):
    """HTTP/1.1 with keep-alive and pipelining (answered in order) for one ASGI application."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        limits: Limits | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        super().__init__(_loop or asyncio.get_event_loop(), limits or default_limits(), server_state.connections)
        self.app = config.loaded_app
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.current: _Request | None = None  # the request being answered
        self.pipeline: deque[_Request] = deque()  # requests read while an earlier one is answered
        self.parsing: _Request | None = None  # the request whose body is being read

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for request in (self.current, self.parsing, *self.pipeline):
            if request is not None:
                request.wake()

    # --- http11.HttpConnection ---

    def answering(self) -> bool:
        return self.current is not None and not self.current.finished

    def refuse(self, status: int, message: str) -> None:
        request = self.parsing
        if self.phase == BODY and request is not None and request is self.current and not request.started:
            # The refusal (a late or malformed body) is this request's answer: the application's is dropped.
            request.finished = True
            self.current = None
            request.wake()
        super().refuse(status, message)

    def headers_complete(self) -> None:
        parser = self.parser
        raw_path, _, query = self.url.partition(b"?")
        if not raw_path.startswith(b"/"):
            raw_path, query = split_target(self.url)
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": parser.get_http_version(),
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
        request = _Request(scope, parser.should_keep_alive())
        self.parsing = request
        if self.current is None:
            self._start(request)
        else:
            self.pipeline.append(request)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None or request.finished:
            return
        request.chunks.append(body)
        request.buffered += len(body)
        if request.buffered > HIGH_WATER:
            self.pause_reading()
        request.wake()

    def message_complete(self) -> None:
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
                self.close()
            return
        if not request.finished and not self.closed:
            logger.error("the gateway application returned without a complete answer")
            if not request.started:
                self._send_error(request, 500, "Internal Server Error")
            else:
                self.close()

    async def _receive(self, request: _Request) -> dict[str, Any]:
        if request.may_continue and not request.chunks and not request.complete and not self.closed:
            # The body is awaited and has not begun: a client that sent Expect: 100-continue waits for this. (When
            # the body came with the head, as it mostly does, the headers are not even looked through.)
            request.may_continue = False
            for name, value in request.scope["headers"]:
                if name == b"expect" and value.lower() == b"100-continue":
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
                    break
        while not request.chunks and not request.complete:
            if self.closed or request.finished:
                return DISCONNECT
            self.resume_reading()
            request.waiter = self.loop.create_future()
            await request.waiter
            request.waiter = None
        if self.closed and not request.complete:
            return DISCONNECT
        chunks, request.chunks, request.buffered = request.chunks, [], 0
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.reading_paused and self.parsing is request:
            self.resume_reading()
        return {"type": "http.request", "body": body, "more_body": not request.complete}

    def _send(self, request: _Request, message: dict[str, Any]) -> None:
        if self.closed or request.finished:
            return
        kind = message["type"]
        if not request.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            request.started = True
            request.may_continue = False
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
        lines = [status_line(status)]
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
            self.close()
        elif request.complete:
            self._next()
        else:
            # Answered before the whole body arrived (413): the rest is read and dropped, then the next request.
            self.resume_reading()

    def _next(self) -> None:
        self.current = None
        if self.pipeline:
            self.resume_reading()
            self._start(self.pipeline.popleft())
        else:
            self.idle()

    def _send_error(self, request: _Request, status: int, text: str) -> None:
        request.keep_alive = False
        body = text.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        self._send(request, {"type": "http.response.start", "status": status, "headers": headers})
        self._send(request, {"type": "http.response.body", "body": body})

    def shutdown(self) -> None:
        """Called by uvicorn on a graceful shutdown: close now when idle, else after the current answer."""
        if self.current is None:
            self.close()
        else:
            self.current.keep_alive = False
            self.pipeline.clear()

    # uvicorn's flow control asks these of every protocol
    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


@cache
def default_limits() -> Limits:
    """The STUDIO_GATEWAY_* connection limits, read once per process (tests pass their own `limits`)."""
    return GatewaySettings.from_env().http


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
