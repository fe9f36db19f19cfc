"""`studio up`: the whole embedded stack in the foreground, stopped cleanly with Ctrl-C.

Order: STUDIO_HOME, the embedded Redis (unless REDIS_URL is set), migrations, the first admin and
the CLI's API token, then the children: web (uvicorn), gateway, Celery worker with beat. Each child
runs in its own process group so that stopping it also stops what it forked (uvicorn and Celery
workers), while the deployment instances the worker starts in their own sessions keep running and
are adopted again by the next `studio up`. This is the only CLI module that imports Django.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import psutil

from apps.core.processes import die_with_parent
from apps.core.redis_server import EmbeddedRedis
from cli.config import read_config_file, studio_home, write_config_file
from cli.errors import CliError

STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL for what is still running after this
START_TIMEOUT_S = 60.0


def say(line: str = "", stream: TextIO | None = None) -> None:
    print(line, file=stream or sys.stdout, flush=True)


@dataclass
class Child:
    """A process `studio up` started, leading its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    members: set[psutil.Process] = field(default_factory=set)

    @property
    def pgid(self) -> int:
        return self.process.pid

    def remember_members(self) -> None:
        """Note every live process of the group (the leader and what it forked)."""
        try:
            leader = psutil.Process(self.process.pid)
            candidates = [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            candidates = []
        for proc in candidates:
            try:
                if os.getpgid(proc.pid) == self.pgid:
                    self.members.add(proc)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass

    def alive(self) -> list[psutil.Process]:
        self.process.poll()  # reap the leader so it does not linger as a zombie
        running = []
        for proc in self.members:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    running.append(proc)
            except psutil.NoSuchProcess:
                pass
        return running

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in self.alive():  # members that left the group (setpgid) still get it
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _lock(home: Path) -> Any:
    """Hold a lock for as long as this `studio up` runs: two on one STUDIO_HOME would share a Redis socket."""
    path = home / "run" / "up.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another process"
        raise CliError(f"a studio is already running from {home} (pid {other}); stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _prepare_database(home: Path, public_url: str) -> dict[str, str]:
    """Migrate, make sure there is an admin and an API token, and write the CLI's config."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import DatabaseError, connections
    from rest_framework.exceptions import AuthenticationFailed

    from apps.accounts.services import password_check, role_set, token_create
    from apps.accounts.tokens import token_user
    from apps.core.errors import ApplicationError

    try:
        call_command("migrate", interactive=False, verbosity=0)
    except DatabaseError as exc:
        where = os.environ.get("DATABASE_URL", "").split("@")[-1] or f"SQLite under {home}"
        raise CliError(f"cannot migrate the database ({where}): {exc}") from None
    User = get_user_model()
    username = os.environ.get("STUDIO_ADMIN_USER") or "admin"
    password_file = home / "admin-password"
    info = {"user": username, "password": "", "password_note": ""}
    # Only the first run makes an admin; later runs use it (or the named user) for the CLI's token.
    admin = (
        User.objects.filter(username=username).first()
        or User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    )
    if admin is None:
        password = os.environ.get("STUDIO_ADMIN_PASSWORD")
        if password:
            try:
                password_check(password, username=username, field="STUDIO_ADMIN_PASSWORD")
            except ApplicationError as exc:
                raise CliError(f"{exc.message} (or unset it and `studio up` makes a random one)") from None
            info["password_note"] = "(from STUDIO_ADMIN_PASSWORD)"
        else:
            password = secrets.token_urlsafe(12)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            info["password"] = password
            info["password_note"] = f"(shown once; saved in {password_file})"
        admin = User.objects.create_superuser(username=username, email="", password=password)
        role_set(username=username, role="admin")
    else:
        info["user"] = admin.get_username()
        if password_file.exists():
            info["password_note"] = f"(password in {password_file})"
    # Keep the CLI's token while it still works (it may be a `studio login` token); else a personal token.
    stored = read_config_file().get("token", "")
    try:
        token_user(stored)
    except AuthenticationFailed:
        stored = token_create(user=admin, name="studio up (cli.json)")[1]
    info["config"] = str(write_config_file(url=public_url, token=stored))
    connections.close_all()
    return info


class Stack:
    """The children of one `studio up`, supervised until a signal or a death."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.redis: Any = None

    def start(self, name: str, argv: list[str]) -> Child:
        # A new session: Ctrl-C in the terminal reaches only `studio up`, which then stops each group in order.
        process = subprocess.Popen(
            argv, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        child = Child(name=name, process=process)
        self.children.append(child)
        return child

    def dead(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        if self.redis is not None and self.redis.process.poll() is not None:
            return Child(name="redis", process=self.redis.process)
        return None

    def stop(self) -> None:
        """SIGTERM every group (newest first), wait, then SIGKILL what is left; Redis last."""
        for child in self.children:
            child.remember_members()
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(child.alive() for child in self.children):
            time.sleep(0.1)
        for child in self.children:
            if child.alive():
                say(f"studio up: {child.name} did not stop within {STOP_GRACE_S:.0f} s; killing it", sys.stderr)
                child.signal(signal.SIGKILL)
        for child in self.children:
            try:
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.redis is not None:
            self.redis.stop()


def _wait_for_web(stack: Stack, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stack.stop_requested.is_set():
        dead = stack.dead()
        if dead is not None:
            raise CliError(f"the {dead.name} process exited with code {dead.process.returncode} while starting")
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    if not stack.stop_requested.is_set():
        raise CliError(f"the web server did not answer on {url} within {START_TIMEOUT_S:.0f} s")


# The web server's limits. uvicorn reads each from its UVICORN_* variable too, which wins over these defaults.
# h11, not httptools: only uvicorn's h11 protocol bounds a request head (--h11-max-incomplete-event-size).
WEB_LIMITS = (
    ("--http", "UVICORN_HTTP", "h11"),
    ("--h11-max-incomplete-event-size", "UVICORN_H11_MAX_INCOMPLETE_EVENT_SIZE", str(64 * 1024)),
    ("--timeout-keep-alive", "UVICORN_TIMEOUT_KEEP_ALIVE", "5"),
    ("--limit-concurrency", "UVICORN_LIMIT_CONCURRENCY", "1000"),  # connections + requests; beyond: 503
)


def _children(*, host: str, port: int, gateway_port: int, home: Path) -> list[tuple[str, list[str]]]:
    """What `studio up` runs, in start order (stopped in reverse)."""
    python = sys.executable
    web = [python, "-m", "uvicorn", "studio.asgi:application", "--host", host, "--port", str(port)]
    # Django's ASGI handler has no lifespan support; access logs would drown the worker's output.
    web += ["--lifespan", "off", "--no-access-log", "--ws", "auto"]
    web += [arg for flag, variable, default in WEB_LIMITS if variable not in os.environ for arg in (flag, default)]
    # --quiet: no ASCII banner; the periodic tasks' received/succeeded lines are quietened in LOGGING.
    worker = [python, "-m", "celery", "-A", "studio.celery", "--quiet", "worker", "--beat", "--loglevel", "INFO"]
    worker += ["--concurrency", "4", "--hostname", "studio@%h"]
    worker += ["--schedule", str(home / "run" / "celerybeat-schedule")]
    gateway = [python, "-m", "gateway", "--host", host, "--port", str(gateway_port)]
    return [("web", web), ("gateway", gateway), ("worker", worker)]


def run(*, host: str, port: int, gateway_port: int) -> int:
    """Run the embedded stack until Ctrl-C (exit 0) or until a child dies (exit 1)."""
    home = studio_home().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["STUDIO_HOME"] = str(home)
    lock = _lock(home)
    for name, number in (("--port", port), ("--gateway-port", gateway_port)):
        if not _port_free(host, number):
            raise CliError(f"{name}: port {number} on {host} is already in use; choose another with {name}")
    public_url = f"http://{_url_host(host)}:{port}"
    gateway_url = f"http://{_url_host(host)}:{gateway_port}"
    os.environ.setdefault("STUDIO_PUBLIC_URL", public_url)
    os.environ.setdefault("STUDIO_GATEWAY_URL", gateway_url)
    if host not in ("127.0.0.1", "localhost", "::1") and "STUDIO_ALLOWED_HOSTS" not in os.environ:
        os.environ["STUDIO_ALLOWED_HOSTS"] = "*" if host in ("0.0.0.0", "::") else f"127.0.0.1,localhost,{host}"
    os.environ["PYTHONUNBUFFERED"] = "1"

    stack = Stack(env=dict(os.environ))
    previous = {
        sig: signal.signal(sig, lambda *_: stack.stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 0
    try:
        if not os.environ.get("REDIS_URL"):
            stack.redis = EmbeddedRedis(home / "run" / "redis.sock", persist=True)
            try:
                stack.redis.start()
            except RuntimeError as exc:
                raise CliError(f"the embedded Redis did not start: {exc}") from None
        admin = _prepare_database(home, public_url)
        for name, argv in _children(host=host, port=port, gateway_port=gateway_port, home=home):
            stack.start(name, argv)
        _wait_for_web(stack, f"http://{_url_host(host)}:{port}")
        if not stack.stop_requested.is_set():
            _banner(public_url, gateway_url, admin, home)
        while not stack.stop_requested.wait(0.5):
            dead = stack.dead()
            if dead is not None:
                say(
                    f"ERROR: the {dead.name} process exited with code {dead.process.returncode}; stopping the studio",
                    sys.stderr,
                )
                code = 1
                break
    except CliError as exc:
        say("ERROR: " + " ".join(line.strip() for line in exc.message.splitlines()), sys.stderr)
        code = 1
    finally:
        if stack.children:
            say("studio up: stopping " + ", ".join(child.name for child in reversed(stack.children)), sys.stderr)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
    return code


def _banner(public_url: str, gateway_url: str, admin: dict[str, str], home: Path) -> None:
    password = admin["password"] or ""
    say("")
    say(f"  Studio is up:  {public_url}")
    say(f"  Gateway:       {gateway_url}  (scoring URIs: {gateway_url}/endpoints/<name>/score)")
    say(f"  Admin:         {admin['user']}" + (f" / {password}" if password else "") + f"  {admin['password_note']}")
    say(f"  CLI config:    {admin['config']}  (try: studio online-endpoint list)")
    say(f"  Data:          {home}")
    say("  Press Ctrl-C to stop.")
    say("")
