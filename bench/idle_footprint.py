"""The embedded stack's idle footprint: processes and resident memory of a fresh `studio up` after it settles.

    python bench/idle_footprint.py [--studio .venv/bin/studio] [--settle 15] [--rounds 3]

Starts `studio up` on free 127.0.0.1 ports with a fresh STUDIO_HOME (SQLite, embedded Redis), waits for its
banner and `--settle` seconds, then counts every process of the stack (its descendants, and the detached
gateway) and sums their RSS; stops it (Ctrl-C, then `studio down`). Prints each round and the medians.
Pass another build's `studio` (e.g. main's) to compare side by side.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(studio: str, settle: float) -> tuple[int, float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="fp") as home:
        skip = ("DATABASE_URL", "REDIS_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in skip}
        env["STUDIO_HOME"] = str(Path(home) / "h")
        log = Path(home) / "up.log"
        gateway_port = free_port()
        with log.open("wb") as sink:
            up = subprocess.Popen(
                [studio, "up", "--port", str(free_port()), "--gateway-port", str(gateway_port)],
                env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "Studio is up" not in log.read_text(errors="replace"):
                if up.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"studio up did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)
            time.sleep(settle)
            procs = {p.pid: p for p in psutil.Process(up.pid).children(recursive=True)}
            for conn in psutil.net_connections("tcp"):  # the detached gateway is no longer a child
                if conn.laddr and conn.laddr.port == gateway_port and conn.status == "LISTEN" and conn.pid:
                    procs.setdefault(conn.pid, psutil.Process(conn.pid))
            rss = sum(p.memory_info().rss for p in procs.values()) / 2**20
            names = sorted(" ".join(p.cmdline()[1:6]) for p in procs.values())
            return len(procs), rss, names
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)
            subprocess.run([studio, "down"], env=env, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studio", default=str(Path(sys.executable).with_name("studio")))
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts, sizes = [], []
    for round_ in range(args.rounds):
        count, rss, names = measure(args.studio, args.settle)
        counts.append(count)
        sizes.append(rss)
        print(f"round {round_ + 1}: {count} processes, {rss:.0f} MiB RSS")
        if round_ == 0:
            for name in names:
                print(f"    {name}")
    print(f"median: {statistics.median(counts):.0f} processes, {statistics.median(sizes):.0f} MiB RSS ({args.studio})")


if __name__ == "__main__":
    main()
