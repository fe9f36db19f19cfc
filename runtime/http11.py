"""The HTTP/1.1 edge both servers share: httptools parsing under limits and deadlines, and refusals.

`runtime/server.py` (the inference server) and `gateway/server.py` (the scoring gateway) subclass
`HttpConnection`. It feeds httptools, keeps the request line, head size, header count, head and body
deadlines, the keep-alive idle timeout and the cap on open connections, and refuses what breaks them; the
subclasses only answer requests. It lives in the runtime because the runtime is installed into every user
environment on its own (the gateway may import the runtime, never the reverse), so a protocol fix lands in
both servers. httptools itself refuses `Content-Length` together with `Transfer-Encoding` (request
smuggling), duplicate `Content-Length`s and malformed chunked framing.

Cost per request is a few attribute updates: the head's limits are checked once per head and once per
`data_received`, and deadlines need no clock reading and no timer per request (see `HttpConnection`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools

logger = logging.getLogger(__name__)

# Where the parser is on a connection; each phase has its own deadline (an index into `timeouts`).
IDLE = 0  # between requests: the keep-alive timeout runs
HEAD = 1  # from the first byte of a request to the end of its head: the head deadline runs
BODY = 2  # from the end of the head to the end of the body: the body deadline runs
BUSY = 3  # the request is read and being answered: no deadline (the application keeps its own)
LINGER = 4  # refused: the answer is out; what the client still sends is read and dropped for a moment

# After a refusal the connection stays open this long, reading and dropping, so that closing it does not
# reset it (a close with unread data sends RST) before the client has read the answer.
LINGER_S = 2.0

STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()) for status in HTTPStatus}


@dataclass(frozen=True)
class Limits:
    """What one connection may cost. Each is a setting of both servers (see docs/gateway.md, docs/runtime.md)."""

    max_request_line_bytes: int = 8 * 1024  # the request target; longer: 414
    max_head_bytes: int = 64 * 1024  # request line and headers together; larger: 431
    max_headers: int = 100  # more header fields: 431
    head_timeout_s: float = 10.0  # from the first byte of a request to the end of its head; later: 408
    body_timeout_s: float = 60.0  # from the end of the head to the end of the body; later: 408
    keep_alive_s: float = 5.0  # an idle connection is closed after this long
    max_connections: int = 1000  # open connections per process; beyond it new ones get 503 and are closed

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"{name} must be greater than 0, got {value}")


class _Refused(Exception):
    """Raised in a parser callback to stop parsing and refuse the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <phrase>\\r\\n`."""
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a request target, in origin form (`/p?q`) or absolute form (`http://h/p?q`)."""
    path, _, query = url.partition(b"?")
    if not path.startswith(b"/"):
        parsed = httptools.parse_url(url)  # absolute form, as clients send it to proxies
        path, query = parsed.path or b"/", parsed.query or b""
    return path, query


class HttpConnection(asyncio.Protocol):
    """One client connection: parsing, limits, deadlines and refusals; a subclass answers the requests.

    The subclass implements `on_body(chunk)`, `headers_complete()` (the head is in `self.url` and
    `self.headers`, lowered names), `message_complete()`, `answering()` (an answer is being written, or read
    requests wait for one) and may change `error_body()`; it calls `idle()` once everything read so far has been
    answered, and pauses and resumes reading through `pause_reading()` / `resume_reading()` so that waiting on
    itself never counts against the client's deadlines.

    Deadlines cost nothing per request: a phase change only moves `turn`. A timer per connection looks every
    `tick` (a quarter of the shortest timeout); a phase it has seen unchanged for its whole timeout ends. So a
    deadline acts between its time and a quarter of it later, never before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Limits, connections: set[Any]) -> None:
        self.loop = loop
        self.limits = limits
        self.connections = connections  # shared by the process' connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False  # nothing more goes out: closed, or refused
        self.phase = IDLE
        self.turn = 0  # moves at every phase change
        self.seen_turn = -1  # the turn the timer saw last, and since when
        self.seen_at = 0.0
        self.timeouts = (limits.keep_alive_s, limits.head_timeout_s, limits.body_timeout_s, 0.0, LINGER_S)
        self.tick = min(limits.keep_alive_s, limits.head_timeout_s, limits.body_timeout_s) / 4
        self.timer: asyncio.TimerHandle | None = None
        self.reading_paused = False
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_raw = 0  # bytes fed while the whole feed was inside one request's head
        self.head_split = False  # the current head has taken more than one read
        self.feed_size = 0  # bytes in the read being parsed
        self.begun = 0  # requests begun on this connection
        self.refusal: bytes | None = None  # what ends the connection (maybe nothing), once earlier answers are out

    # --- what subclasses implement ---

    def on_body(self, body: bytes) -> None:
        raise NotImplementedError

    def headers_complete(self) -> None:
        raise NotImplementedError

    def message_complete(self) -> None:
        raise NotImplementedError

    def answering(self) -> bool:
        """True while an answer is being written or read requests wait for theirs."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> tuple[bytes, bytes]:
        """(content type, body) of an answer this layer makes itself."""
        return b"text/plain; charset=utf-8", message.encode()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]
        if len(self.connections) >= self.limits.max_connections:
            # Refused before reading anything: a flood of connections costs a write and a close each.
            self.closed = True
            message = f"this server already has {len(self.connections)} open connections, its limit; retry later"
            self.transport.write(self._error(503, message))  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]
            return
        self.connections.add(self)
        self.timer = self.loop.call_later(self.tick, self._on_timer)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # refused: read and drop until the connection closes
        in_head = self.phase == HEAD
        begun = self.begun
        self.feed_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self.refuse(cause.status, cause.message)
            else:
                logger.error("answering a request failed", exc_info=cause or exc)
                self.refuse(500, "Internal Server Error")
            return
        except httptools.HttpParserUpgrade:
            # A request to switch protocols (websocket, h2c), which neither server does: httptools read it whole
            # and it is answered as a plain request; what the client sends next is not HTTP, so the connection
            # ends after the answer.
            self._end_with(b"")
            return
        except httptools.HttpParserError as exc:
            self.refuse(400, f"invalid HTTP request: {exc}")
            return
        if self.phase == HEAD:
            self.head_split = True
            if in_head and self.begun == begun:
                # All of it was one request's head, and a header still being read is buffered by httptools.
                self.head_raw += len(data)
                if self.head_raw > self.limits.max_head_bytes:
                    self.refuse(431, self._head_too_large())

    def eof_received(self) -> bool | None:
        return None  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.phase = LINGER
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # --- httptools callbacks ---

    # The head's limits are checked once it is complete. Until then what it can cost is bounded anyway: a head
    # that takes more than one read is counted in data_received (head_raw), and one read is at most 256 KiB.

    def on_message_begin(self) -> None:
        self.phase = HEAD
        self.turn += 1
        self.begun += 1
        self.url = b""
        self.headers = []
        self.head_raw = 0
        self.head_split = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.url) > limits.max_request_line_bytes:
            raise _Refused(
                414, f"the request target is longer than this server's limit of {limits.max_request_line_bytes} bytes"
            )
        if len(self.headers) > limits.max_headers:
            raise _Refused(431, f"the request has more header fields than this server's limit of {limits.max_headers}")
        if self.head_split or self.feed_size > limits.max_head_bytes:
            # Not all in one read no larger than the limit: count it.
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limits.max_head_bytes:
                raise _Refused(431, self._head_too_large())
        self.phase = BODY
        self.turn += 1
        self.headers_complete()

    def on_message_complete(self) -> None:
        self.phase = BUSY
        self.turn += 1
        self.message_complete()

    # --- for subclasses ---

    def idle(self) -> None:
        """Everything read so far is answered: send a pending refusal, or start the keep-alive timeout."""
        if self.refusal is not None:
            self._send_refusal()
        elif self.phase == BUSY:
            self.phase = IDLE
            self.turn += 1

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` and close; after the answers already under way, if any. Nothing more is parsed."""
        self._end_with(self._error(status, message))

    def pause_reading(self) -> None:
        """Stop reading (the server is behind); the client's deadlines wait meanwhile."""
        if not self.reading_paused and not self.closed and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again; a head or body deadline starts afresh."""
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = False
            self.turn += 1
            self.transport.resume_reading()

    def close(self) -> None:
        """Close now."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- internals ---

    def _end_with(self, last: bytes) -> None:
        if self.refusal is not None or self.closed:
            return
        self.refusal = last
        if self.phase in (HEAD, BODY):
            self.phase = BUSY  # the refusal waits for earlier answers: no deadline meanwhile
            self.turn += 1
        if not self.answering():
            self._send_refusal()

    def _error(self, status: int, message: str) -> bytes:
        content_type, body = self.error_body(status, message)
        head = b"content-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (content_type, len(body))
        return status_line(status) + head + body

    def _head_too_large(self) -> str:
        return f"the request head is larger than this server's limit of {self.limits.max_head_bytes} bytes"

    def _send_refusal(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.refusal is None:
            return
        self.closed = True
        self.phase = LINGER
        self.turn += 1
        if self.refusal:
            transport.write(self.refusal)
        if transport.can_write_eof():
            transport.write_eof()  # the client sees the end of the answer at once
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()  # read and drop, so that the close does not reset the connection

    def _on_timer(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        now = self.loop.time()
        phase = self.phase
        if self.turn != self.seen_turn or (self.reading_paused and phase in (HEAD, BODY)):
            # A new phase (it began within the last tick), or the server is the one waiting: start its clock.
            self.seen_turn = self.turn
            self.seen_at = now
        elif phase != BUSY and now - self.seen_at >= self.timeouts[phase]:
            if phase == HEAD:
                self.refuse(408, f"the request head did not arrive within {self.limits.head_timeout_s:g} s")
            elif phase == BODY:
                self.refuse(408, f"the request body did not arrive within {self.limits.body_timeout_s:g} s")
            else:  # IDLE: keep-alive over; LINGER: the client had its time to read the refusal
                self.close()
                return
        self.timer = self.loop.call_at(now + self.tick, self._on_timer)
