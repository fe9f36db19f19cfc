"""A lean HTTP/1.1 server on asyncio + httptools: keep-alive, pipelining, chunked streaming, nothing else.

It knows nothing about scoring: it turns requests into AMLRequest objects, calls `app(request)` and writes
the Reply back. Keeping this layer this thin is where the speed over gunicorn + Flask comes from. Parsing,
limits and deadlines are `runtime/http11.py`'s, which the gateway's server shares.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from collections import deque
from collections.abc import Callable, Iterator
from urllib.parse import unquote

from runtime import logs
from runtime.http11 import HttpConnection, Limits, split_target, status_line
from runtime.request import AMLRequest

logger = logging.getLogger("azmlinfsrv")

MAX_PIPELINE = 16  # queued requests per connection before we stop reading from it
# How long requests in flight may finish after SIGTERM; on Kubernetes the pod template sets it from the request
# timeout (and its grace period is longer still).
SHUTDOWN_GRACE_S = float(os.environ.get("STUDIO_DRAIN_S") or 10.0)


class Reply:
    """An answer: status, headers, and either a complete body or an async stream of chunks."""

    __slots__ = ("status", "headers", "body", "stream")

    def __init__(
        self, status: int, headers: list[tuple[str, str]], body: bytes = b"", stream: Iterator[bytes] | None = None
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


App = Callable[[AMLRequest], Reply]


def _header_bytes(headers: list[tuple[str, str]]) -> bytes:
    text = "".join(f"{k}: {v}\r\n" for k, v in headers)
    # Values can come from the scoring script: line breaks in them must not start new headers.
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        text = "".join(f"{_one_line(k)}: {_one_line(str(v))}\r\n" for k, v in headers)
    return text.encode("latin-1", "replace")


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


class HttpProtocol(HttpConnection):
    """One client connection: http11.HttpConnection parses it under the limits; this answers its requests."""

    def __init__(
        self, app: App, loop: asyncio.AbstractEventLoop, registry: set[HttpProtocol], limits: Limits | None = None
    ) -> None:
        super().__init__(loop, limits or Limits(), registry)  # type: ignore[arg-type]
        self.app = app
        self.client: str | None = None
        self.pipeline: deque[tuple[AMLRequest, bool]] = deque()
        self.busy = False
        self.writable: asyncio.Future[None] | None = None
        self._request_headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if isinstance(peer, tuple) else None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        self.writable = self.loop.create_future()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None
        if self.transport is not None and not self.reading_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- http11.HttpConnection

    def error_body(self, status: int, message: str) -> tuple[bytes, bytes]:
        return b"application/json", json.dumps({"message": message}).encode()

    def answering(self) -> bool:
        return self.busy or bool(self.pipeline)

    def headers_complete(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            previous = headers.get(key)
            headers[key] = text if previous is None else f"{previous}, {text}"
        self._request_headers = headers
        self._body = []
        # curl and others wait (a second, for curl) for this before sending a body of more than 1 KiB
        if headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def message_complete(self) -> None:
        url, _, query = self.url.partition(b"?")
        if not url.startswith(b"/"):
            url, query = split_target(self.url)
        path = url.decode("utf-8", "replace")
        if "%" in path:
            path = unquote(path)
        request = AMLRequest(
            self.parser.get_method().decode("ascii"),
            path,
            query,
            self._request_headers,
            b"".join(self._body),
            self.client,
        )
        keep_alive = self.parser.should_keep_alive()
        if self.busy:
            # a streamed answer is still being written: pipelined requests wait their turn
            self.pipeline.append((request, keep_alive))
            if len(self.pipeline) > MAX_PIPELINE:
                self.pause_reading()
        else:
            self._answer(request, keep_alive)
            if not self.busy and not self.closed:
                self.idle()

    # -- answering

    def _answer(self, request: AMLRequest, keep_alive: bool) -> None:
        # The app is synchronous on purpose: scoring runs in this thread, one request at a time per worker,
        # and answering without a task per request is a good part of the speed.
        try:
            reply = self.app(request)
        except Exception:
            logger.exception("Unhandled error while answering %s %s", request.method, request.path)
            reply = Reply(
                500,
                [("Content-Type", "application/json")],
                b'{"message": "An unexpected internal error occurred. Check the logs for more info."}',
            )
        transport = self.transport
        if self.closed or transport is None:
            return
        head = status_line(reply.status) + _header_bytes(reply.headers)
        if not keep_alive:
            head += b"Connection: close\r\n"
        if reply.stream is not None:
            transport.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
            self.busy = True
            self.loop.create_task(self._stream(request, reply.stream, keep_alive))
            return
        body = b"" if request.method == "HEAD" else reply.body
        transport.write(head + b"Content-Length: %d\r\n\r\n" % len(reply.body) + body)
        if not keep_alive:
            self.close()

    async def _stream(self, request: AMLRequest, chunks: Iterator[bytes], keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        try:
            for chunk in chunks:
                if self.closed:
                    break
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                if self.writable is not None:
                    await self.writable  # the client reads slower than we produce: wait for its buffer
                else:
                    await asyncio.sleep(0)  # let other connections in between chunks
        except Exception:
            # The status line is gone already: all we can do is log and cut the connection short.
            logger.exception("Streaming the response of %s %s failed", request.method, request.path)
            self.close()
            return
        if self.closed:
            return
        transport.write(b"0\r\n\r\n")
        if not keep_alive:
            self.close()
            return
        self.busy = False
        while self.pipeline and not self.busy and not self.closed:
            self._answer(*self.pipeline.popleft())
        if not self.busy and not self.closed:
            self.resume_reading()
            self.idle()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when the environment has it (it is in runtime/requirements.txt), asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def listening_socket(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """A TCP socket bound to host:port (IPv4 or IPv6), listening unless listen=False."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    sock.setblocking(False)
    return sock


def serve(sock: socket.socket, app: App, loop: asyncio.AbstractEventLoop, limits: Limits | None = None) -> None:
    """Answer connections on `sock` until SIGTERM or SIGINT, then finish the requests in flight."""
    asyncio.set_event_loop(loop)
    connections: set[HttpProtocol] = set()

    server = loop.run_until_complete(
        loop.create_server(lambda: HttpProtocol(app, loop, connections, limits), sock=sock, backlog=2048)
    )
    logs.batch_on(loop)
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    try:
        loop.run_until_complete(stop)
        server.close()

        async def drain() -> None:
            deadline = loop.time() + SHUTDOWN_GRACE_S
            while any(c.busy and not c.closed for c in connections) and loop.time() < deadline:
                await asyncio.sleep(0.05)

        loop.run_until_complete(drain())
    finally:
        for protocol in list(connections):
            if protocol.transport is not None:
                protocol.transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        logs.batch_on(None)
        loop.close()
