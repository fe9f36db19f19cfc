"""`python -m gateway --host 127.0.0.1 --port 8001 [--workers N]`: the gateway under uvicorn."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from gateway.config import GatewaySettings, SettingError


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001)")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes sharing the port (default 1)")
    parser.add_argument("--ssl-keyfile", help="serve HTTPS with this private key (PEM)")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    try:
        GatewaySettings.from_env()  # read again by each worker; here to refuse a bad value with a clear message
    except (SettingError, ValueError) as exc:
        parser.error(str(exc))

    uvicorn.run(
        "gateway.app:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="gateway.server:GatewayHttpProtocol",  # httptools, one write per answer, the limits of runtime/http11
        lifespan="on",
        access_log=False,  # an access line per request costs throughput; metrics count every request
        server_header=False,
        proxy_headers=False,  # the gateway never looks at the client's address; skip the middleware per request
        log_level=args.log_level,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
