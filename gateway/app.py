"""The scoring gateway as a raw ASGI application, outside Django's request cycle.

Routes: `GET|POST|OPTIONS /endpoints/<name>/score`, `GET /endpoints/<name>/swagger.json`, `GET /metrics`
(Prometheus) and `GET /healthz` (ready once a routing table is loaded; never asks the database). The routing
table comes from `source.py` (the studio's database), off the hot path.

    uvicorn gateway.app:application --loop uvloop --http httptools
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import GatewaySettings
from gateway.proxy import Answer, Gateway, error_answer
from gateway.source import DatabaseSource

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCORE_METHODS = frozenset({"GET", "POST", "OPTIONS"})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def create_application(settings: GatewaySettings | None = None, gateway: Gateway | None = None) -> ASGIApp:
    """An ASGI application with its own gateway state (one per process; tests make their own)."""
    state = gateway or Gateway(settings or GatewaySettings.from_env(), DatabaseSource())
    max_body = state.settings.max_body_bytes

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await _http(state, max_body, scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(state, receive, send)

    application.gateway = state  # type: ignore[attr-defined]
    return application


async def _lifespan(state: Gateway, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await state.start()
            except Exception as exc:
                logger.exception("the gateway could not start")
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await state.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(state: Gateway, max_body: int, scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    path: str = scope["path"]
    method: str = scope["method"]
    parts = path.split("/")
    # ["", "endpoints", "<name>", "score" | "swagger.json"]
    if len(parts) == 4 and parts[1] == "endpoints" and parts[3] in ("score", "swagger.json"):
        if not state._started:
            await state.start()  # a server without lifespan events
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if parts[3] == "score":
            if method not in SCORE_METHODS:
                answer = error_answer(405, "MethodNotAllowed", f"{method} is not allowed on {path}; use POST or GET")
            else:
                try:
                    body = await _read_body(receive, headers, max_body)
                except _TooLarge:
                    answer = error_answer(
                        413,
                        "PayloadTooLarge",
                        f"the request body is larger than the gateway's limit of {max_body} bytes "
                        "(STUDIO_GATEWAY_MAX_BODY_BYTES)",
                    )
                except _Disconnected:
                    return
                else:
                    answer = await state.score(
                        endpoint_name=parts[2],
                        method=method,
                        query=scope.get("query_string", b""),
                        headers=headers,
                        body=body,
                        started=started,
                    )
        elif method == "GET":
            answer = await state.swagger(endpoint_name=parts[2], query=scope.get("query_string", b""), headers=headers)
        else:
            answer = error_answer(405, "MethodNotAllowed", f"{method} is not allowed on {path}; use GET")
    elif path == "/metrics" and method == "GET":
        answer = state.prometheus()
    elif path == "/healthz" and method == "GET":
        answer = _health(state)
    else:
        answer = error_answer(
            404, "NotFound", f"{path} is not a gateway route; scoring URIs look like /endpoints/<name>/score"
        )
    await _send(send, answer)


def _health(state: Gateway) -> Answer:
    """Ready once a routing table is loaded; never asks the database (a probe must not fail with it)."""
    config = state.config
    if not state._started or config is None or not config.reloads:
        return error_answer(503, "NotReady", "the gateway has not loaded its routing table yet")
    body = {
        "ok": True,
        "endpoints": len(config.table),
        "table_age_s": round(time.monotonic() - config.loaded_at, 1),
        "redis": "down" if config.redis_down else "ok",
    }
    return Answer(200, [(b"content-type", b"application/json")], json.dumps(body).encode())


async def _read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    for name, value in headers:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise _TooLarge
            except ValueError:
                pass
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, answer: Answer) -> None:
    headers = answer.headers
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


application = create_application()
