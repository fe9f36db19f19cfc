"""CPU per request of the two HTTP servers' protocol layers, without sockets, for two source trees side by side.

Requests are fed straight into the protocol object (`runtime.server.HttpProtocol`, and the gateway's
`GatewayHttpProtocol` with a trivial ASGI application), one request per `data_received`, as a keep-alive
client's requests arrive, on a uvloop loop; the answer goes to a transport that only counts bytes. What is
left is the servers' own per-request work: parsing, limits, deadlines, building the request and writing the
answer. No network, no wrk, no other process: on a shared machine this moves far less than throughput does.

Each round runs every (tree, server) pair once in a fresh interpreter, in alternating order; the median of
the rounds is printed, in microseconds of CPU per request.

    python bench/http_server_cost.py --baseline /path/to/another/checkout [--rounds 7] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BODY = b'{"data": [[0.1, -1.2, 0.3, 2.0]]}'
REQUEST = (
    b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Authorization: Bearer bench-key\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
)


class _Transport(asyncio.Transport):
    """Counts what is written; reports a peer so that the protocols fill in their client address."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.answered: asyncio.Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


def _runtime(requests: int) -> float:
    import uvloop

    from runtime.server import HttpProtocol, Reply

    loop = uvloop.new_event_loop()
    answer = Reply(200, [("Content-Type", "application/json")], b'{"result": [1]}')
    protocol = HttpProtocol(lambda request: answer, loop, set())
    transport = _Transport()
    protocol.connection_made(transport)
    request = REQUEST % (b"/score", len(BODY), BODY)
    for _ in range(1000):  # warm-up
        protocol.data_received(request)
    began = time.process_time()
    for _ in range(requests):
        protocol.data_received(request)
    spent = time.process_time() - began
    assert transport.written > 0
    loop.close()
    return spent / requests * 1e6


def _gateway(requests: int) -> float:
    import uvloop

    try:
        from gateway.server import GatewayHttpProtocol
    except ImportError:  # a tree from before the gateway moved to the top level
        from apps.endpoints.gateway.server import GatewayHttpProtocol  # type: ignore[no-redef]

    headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b'{"result": [1]}'})

    async def run() -> float:
        loop = asyncio.get_running_loop()
        config = SimpleNamespace(loaded=True, loaded_app=app, timeout_keep_alive=5)
        state = SimpleNamespace(connections=set(), tasks=set())
        protocol = GatewayHttpProtocol(config, state, {}, _loop=loop)
        transport = _Transport()
        protocol.connection_made(transport)
        request = REQUEST % (b"/endpoints/bench/score", len(BODY), BODY)

        async def one() -> None:
            transport.answered = loop.create_future()
            protocol.data_received(request)
            await transport.answered

        for _ in range(1000):  # warm-up
            await one()
        began = time.process_time()
        for _ in range(requests):
            await one()
        return (time.process_time() - began) / requests * 1e6

    return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="another checkout of the project to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--measure", choices=["runtime", "gateway"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps((_runtime if args.measure == "runtime" else _gateway)(args.requests)))
        return
    trees = {"baseline": Path(args.baseline).resolve(), "this tree": REPO}
    results: dict[tuple[str, str], list[float]] = {}
    for index in range(args.rounds):
        order = [(tree, server) for tree in trees for server in ("runtime", "gateway")]
        for tree, server in order if index % 2 == 0 else reversed(order):
            env = {**os.environ, "PYTHONPATH": str(trees[tree]), "DJANGO_SETTINGS_MODULE": ""}
            command = [sys.executable, __file__, "--baseline", ".", "--requests", str(args.requests)]
            output = subprocess.run(
                [*command, "--measure", server], cwd=trees[tree], env=env, capture_output=True, text=True, check=True
            ).stdout
            results.setdefault((tree, server), []).append(json.loads(output))
        print(f"round {index + 1}/{args.rounds}: " + ", ".join(
            f"{tree} {server} {values[-1]:.2f} us" for (tree, server), values in results.items()
        ), flush=True)  # fmt: skip
    print(f"\nmedian CPU per request over {args.rounds} rounds of {args.requests} requests (us)")
    print(f"{'server':10}{'baseline':>12}{'this tree':>12}{'change':>10}")
    for server in ("runtime", "gateway"):
        before = statistics.median(results[("baseline", server)])
        after = statistics.median(results[("this tree", server)])
        print(f"{server:10}{before:>12.2f}{after:>12.2f}{(after / before - 1) * 100:>+9.1f}%")


if __name__ == "__main__":
    main()
