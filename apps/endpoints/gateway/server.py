"""uvicorn's httptools protocol with one change: a response's head and body leave in one write.

uvicorn writes the status line and headers when `http.response.start` arrives and the body when
`http.response.body` arrives: two send() syscalls per answer, which on a small VM cost about as much as the
gateway's own Python work. Writes made in one turn of the event loop are joined and flushed at the start of
the next turn instead (the gateway sends both messages in the same turn).

    uvicorn apps.endpoints.gateway.app:application --http apps.endpoints.gateway.server:GatewayHttpProtocol
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """A transport whose writes within one loop turn become one write."""

    __slots__ = ("_transport", "_loop", "_buffer", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written before close() must still go out
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol over a coalescing transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        coalescing = _CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]
