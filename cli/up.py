"""`studio up`: the whole embedded stack in the foreground, supervised, stopped cleanly with Ctrl-C.

Order: STUDIO_HOME, the embedded Redis (unless REDIS_URL is set), migrations, the first admin and
the CLI's API token, then the children: the gateway, the web server (uvicorn), the Celery worker and
beat. Any child that exits is restarted with back-off (`cli/supervision.py` decides); `studio up` stops
only on Ctrl-C/SIGTERM or when a child keeps failing at start. Each child runs in its own session so that
Ctrl-C reaches only `studio up`, which stops the groups in order and the embedded Redis last. The data
plane outlives it: the gateway runs detached (re-adopted by the next `studio up` through
`$STUDIO_HOME/run/gateway.json`), like the deployment instances the worker starts. This is the only CLI
module that imports Django.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import psutil

from apps.core.processes import die_with_parent
from apps.core.redis_server import EmbeddedRedis
from cli import tls
from cli.config import read_config_file, studio_home, write_config_file
from cli.errors import CliError
from cli.supervision import Policy, after_exit, describe_exit

STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL for what is still running after this
START_TIMEOUT_S = 60.0


def say(line: str = "", stream: TextIO | None = None) -> None:
    print(line, file=stream or sys.stdout, flush=True)


@dataclass
class Child:
    """A process `studio up` supervises, leading its own process group (or a detached one it adopted)."""

    name: str
    spawn: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    adopted: psutil.Process | None = None
    started_at: float = 0.0
    start_failures: int = 0  # exits soon after a start, in a row
    restarts: int = 0
    restart_at: float | None = None  # monotonic time of the pending restart
    members: set[psutil.Process] = field(default_factory=set)

    def launch(self) -> Child:
        self.adopted = None
        self.members = set()
        self.started_at = time.monotonic()
        self.process = self.spawn()
        return self

    def adopt(self, process: psutil.Process) -> None:
        self.process, self.adopted = None, process
        self.started_at = time.monotonic()

    @property
    def pgid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        return self.adopted.pid if self.adopted is not None else None

    def exited(self) -> tuple[bool, int | None]:
        """Whether the leader has exited, and its exit code when known (an adopted process's is not)."""
        if self.process is not None:
            code = self.process.poll()
            return code is not None, code
        if self.adopted is not None:
            try:
                return not self.adopted.is_running() or self.adopted.status() == psutil.STATUS_ZOMBIE, None
            except psutil.NoSuchProcess:
                return True, None
        return False, None  # waiting for its restart

    def remember_members(self) -> None:
        """Note every live process of the group (the leader and what it forked)."""
        if self.pgid is None:
            return
        try:
            leader = psutil.Process(self.pgid)
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
        if self.process is not None:
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
        if self.pgid is not None:
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
    from rest_framework.authtoken.models import Token

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
            info["password_note"] = "(from STUDIO_ADMIN_PASSWORD)"
        else:
            password = secrets.token_urlsafe(12)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            info["password"] = password
            info["password_note"] = f"(shown once; saved in {password_file})"
        admin = User.objects.create_superuser(username=username, email="", password=password)
    else:
        info["user"] = admin.get_username()
        if password_file.exists():
            info["password_note"] = f"(password in {password_file})"
    stored = read_config_file().get("token", "")
    if not Token.objects.filter(key=stored).exists():
        stored = Token.objects.get_or_create(user=admin)[0].key
    info["config"] = str(write_config_file(url=public_url, token=stored))
    connections.close_all()
    return info


class Stack:
    """The children of one `studio up`, restarted when they exit, until Ctrl-C or a child that keeps failing."""

    def __init__(self, env: dict[str, str], policy: Policy | None = None) -> None:
        self.env = env
        self.policy = policy or Policy.from_env()
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.redis: Child | None = None
        self.gateway: Child | None = None

    def add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def start(self, name: str, argv: list[str]) -> Child:
        """Start a child in its own session: Ctrl-C in the terminal reaches only `studio up`."""
        return self.add(Child(name=name, spawn=lambda: _popen(argv, self.env)).launch())

    def supervise_once(self, now: float) -> str | None:
        """Restart what exited (after its back-off); the reason to give up when a child keeps failing at start."""
        for child in [self.redis, *self.children]:
            if child is None:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    try:
                        child.launch()
                    except (OSError, RuntimeError) as exc:
                        child.process = None
                        reason = self._exited(child, None, now, f"could not start: {exc}")
                        if reason:
                            return reason
                continue
            exited, code = child.exited()
            if exited:
                reason = self._exited(child, code, now, describe_exit(code))
                if reason:
                    return reason
        return None

    def _exited(self, child: Child, code: int | None, now: float, how: str) -> str | None:
        ran_s = now - child.started_at
        decision = after_exit(self.policy, ran_s=ran_s, start_failures=child.start_failures)
        child.start_failures = decision.start_failures
        if not decision.restart:
            return (
                f"the {child.name} {how}, {decision.start_failures} times in a row within "
                f"{self.policy.healthy_after_s:.0f} s of starting (see its output above); stopping the studio"
            )
        child.restarts += 1
        child.restart_at = now + decision.delay_s
        say(
            f"studio up: the {child.name} {how} after {ran_s:.1f} s; restarting it in {decision.delay_s:.1f} s "
            f"(restart {child.restarts})",
            sys.stderr,
        )
        return None

    def stop(self) -> None:
        """SIGTERM every group (newest first), wait, then SIGKILL what is left; Redis last; the gateway stays."""
        for child in self.children:
            child.remember_members()
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(child.alive() for child in self.children):
            time.sleep(0.1)
        for child in self.children:
            if child.alive():
                say(f"studio up: the {child.name} did not stop within {STOP_GRACE_S:.0f} s; killing it", sys.stderr)
                child.signal(signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        if self.redis is not None and self.redis.process is not None:
            self.redis.signal(signal.SIGTERM)
            try:
                self.redis.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.redis.signal(signal.SIGKILL)


def _popen(argv: list[str], env: dict[str, str], *, detached_log: Path | None = None) -> subprocess.Popen[bytes]:
    # A neutral working folder and `python -P`: the folder `studio up` runs from never shadows the studio's packages.
    if detached_log is None:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=env["STUDIO_HOME"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    with detached_log.open("ab") as log:
        # Not tied to `studio up`'s life: the data plane keeps serving while the studio is stopped or restarted.
        return subprocess.Popen(
            argv,
            env=env,
            cwd=env["STUDIO_HOME"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_for_web(stack: Stack, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stack.stop_requested.is_set():
        reason = stack.supervise_once(time.monotonic())
        if reason is not None:
            raise CliError(reason)
        try:
            httpx.get(f"{url}/livez", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    if not stack.stop_requested.is_set():
        raise CliError(f"the web server did not answer on {url} within {START_TIMEOUT_S:.0f} s")


# The web server's limits. uvicorn reads each from its UVICORN_* variable too, which wins over these defaults.
# h11, not httptools: only uvicorn's h11 protocol bounds a request head (--h11-max-incomplete-event-size).
# uvicorn has no deadline for a request head or body: docs/operations.md says to put a proxy in front.
WEB_LIMITS = (
    ("--http", "UVICORN_HTTP", "h11"),
    ("--h11-max-incomplete-event-size", "UVICORN_H11_MAX_INCOMPLETE_EVENT_SIZE", str(64 * 1024)),
    ("--timeout-keep-alive", "UVICORN_TIMEOUT_KEEP_ALIVE", "5"),
    ("--limit-concurrency", "UVICORN_LIMIT_CONCURRENCY", "1000"),  # connections + requests; beyond: 503
)


def _children(*, host: str, port: int, home: Path) -> list[tuple[str, list[str]]]:
    """What `studio up` runs under its supervision, in start order (stopped in reverse)."""
    python = [sys.executable, "-P"]  # -P: the current folder is not put on sys.path
    web = [*python, "-m", "uvicorn", "studio.asgi:application", "--host", host, "--port", str(port)]
    # Django's ASGI handler has no lifespan support; access logs would drown the worker's output.
    web += ["--lifespan", "off", "--no-access-log", "--ws", "auto"]
    web += [arg for flag, variable, default in WEB_LIMITS if variable not in os.environ for arg in (flag, default)]
    # --quiet: no ASCII banner; the periodic tasks' received/succeeded lines are quietened in LOGGING.
    # The pool's size is CELERY_WORKER_CONCURRENCY (STUDIO_WORKER_CONCURRENCY; default: the machine's cores).
    worker = [*python, "-m", "celery", "-A", "studio.celery", "--quiet", "worker", "--loglevel", "INFO"]
    # One worker: no gossip, mingle or event heartbeats (fewer Redis connections, no 1 s start-up wait, and no
    # Celery traceback when Redis restarts); its liveness is apps/core/heartbeat.py.
    worker += ["--hostname", "studio@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    # Beat on its own: a worker restart does not stop the schedule, and a beat crash is seen and restarted.
    beat = [*python, "-m", "celery", "-A", "studio.celery", "--quiet", "beat", "--loglevel", "WARNING"]
    beat += ["--schedule", str(home / "run" / "celerybeat-schedule")]
    return [("web server", web), ("worker", worker), ("beat", beat)]


def _gateway_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-P", "-m", "gateway", "--host", host, "--port", str(port)]


def _gateway(stack: Stack, *, host: str, port: int, home: Path) -> Child:
    """The gateway runs detached: adopt the one still serving from a previous `studio up`, or start one."""
    argv = _gateway_argv(host, port)
    state = home / "run" / "gateway.json"
    log = home / "logs" / "gateway.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def spawn() -> subprocess.Popen[bytes]:
        process = _popen(argv, stack.env, detached_log=log)
        created = psutil.Process(process.pid).create_time()
        state.write_text(json.dumps({"pid": process.pid, "created": created, "host": host, "port": port}))
        return process

    child = Child(name="gateway", spawn=spawn)
    adopted = _running_gateway(state)
    if adopted is not None and (adopted[1], adopted[2]) == (host, port):
        child.adopt(adopted[0])
        say(f"studio up: the gateway (pid {adopted[0].pid}) kept serving on {host}:{port}; adopted it")
        return child
    if adopted is not None:  # serving another address: this run's flags win
        say(f"studio up: stopping the gateway (pid {adopted[0].pid}) on {adopted[1]}:{adopted[2]}", sys.stderr)
        _stop_process(adopted[0])
    if not _port_free(host, port):
        raise CliError(f"--gateway-port: port {port} on {host} is already in use; choose another with --gateway-port")
    return child.launch()


def _running_gateway(state: Path) -> tuple[psutil.Process, str, int] | None:
    """The detached gateway a previous `studio up` started, if that very process still runs."""
    try:
        record = json.loads(state.read_text())
        process = psutil.Process(int(record["pid"]))
        if abs(process.create_time() - float(record["created"])) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
            return None  # the pid was reused
        return process, str(record["host"]), int(record["port"])
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None


def _stop_process(process: psutil.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_S)
    except psutil.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    except (OSError, psutil.Error):
        pass


def stop_gateway(home: Path) -> int | None:
    """Stop the detached gateway of the studio under `home`; its pid, or None when none was running."""
    state = home / "run" / "gateway.json"
    running = _running_gateway(state)
    if running is None:
        return None
    _stop_process(running[0])
    state.unlink(missing_ok=True)
    return running[0].pid


def _instance_processes(home: Path) -> list[psutil.Process]:
    """The deployment instances recorded under `home/instances` (pid and create time checked)."""
    found = []
    for path in (home / "instances").glob("*/*/state.json"):
        try:
            record = json.loads(path.read_text())
            process = psutil.Process(int(record["pid"]))
            created = record.get("create_time")
            if (created is None or abs(process.create_time() - float(created)) < 0.05) and (
                process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass
    return found


def down(*, instances: bool) -> int:
    """`studio down`: stop the detached gateway (and the deployment instances too with --instances)."""
    home = studio_home().resolve()
    try:
        lock = _lock(home)
    except CliError:
        raise CliError(f"`studio up` is still running from {home}: stop it with Ctrl-C first") from None
    lock.close()
    pid = stop_gateway(home)
    say(f"stopped the gateway (pid {pid})" if pid else "no gateway was running")
    if instances:
        running = _instance_processes(home)
        for process in running:
            _stop_process(process)
        say(f"stopped {len(running)} deployment instance(s); the next `studio up` starts them again")
    return 0


def _redis(stack: Stack, home: Path) -> Child:
    server = EmbeddedRedis(home / "run" / "redis.sock", persist=True)

    def spawn() -> subprocess.Popen[bytes]:
        server.start()
        assert server.process is not None
        return server.process

    try:
        return Child(name="embedded Redis", spawn=spawn).launch()
    except RuntimeError as exc:
        raise CliError(f"the embedded Redis did not start: {exc}") from None


def run(
    *, host: str, port: int, gateway_port: int, https_port: int | None = None, gateway_https_port: int | None = None
) -> int:
    """Run the embedded stack until Ctrl-C (exit 0) or until a child keeps failing at start (exit 1)."""
    home = studio_home().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["STUDIO_HOME"] = str(home)
    lock = _lock(home)
    if not _port_free(host, port):
        raise CliError(f"--port: port {port} on {host} is already in use; choose another with --port")
    public_url = f"http://{_url_host(host)}:{port}"
    gateway_url = f"http://{_url_host(host)}:{gateway_port}"
    os.environ.setdefault("STUDIO_PUBLIC_URL", public_url)
    os.environ.setdefault("STUDIO_GATEWAY_URL", gateway_url)
    https = tls.plan_https(
        home, host=host, url_host=_url_host(host), port=port, gateway_port=gateway_port,
        https=https_port, gateway_https=gateway_https_port,
    )  # fmt: skip
    for name, number in https.ports.items():
        if not _port_free(host, number):
            raise CliError(f"the {name}'s HTTPS port {number} on {host} is already in use; choose another")
    os.environ.setdefault("STUDIO_GATEWAY_HTTPS_URL", https.gateway_url)
    if host not in ("127.0.0.1", "localhost", "::1") and "STUDIO_ALLOWED_HOSTS" not in os.environ:
        os.environ["STUDIO_ALLOWED_HOSTS"] = "*" if host in ("0.0.0.0", "::") else f"127.0.0.1,localhost,{host}"
    os.environ["PYTHONUNBUFFERED"] = "1"

    try:
        policy = Policy.from_env()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    stack = Stack(env=dict(os.environ), policy=policy)
    previous = {
        sig: signal.signal(sig, lambda *_: stack.stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 0
    try:
        if not os.environ.get("REDIS_URL"):
            stack.redis = _redis(stack, home)
        admin = _prepare_database(home, public_url)
        stack.gateway = stack.add(_gateway(stack, host=host, port=gateway_port, home=home))
        children = _children(host=host, port=port, home=home)
        # HTTPS (cli/tls.py): the web server and the gateway again on their HTTPS ports, supervised like the rest.
        plain = [("web", dict(children)["web server"]), ("gateway", _gateway_argv(host, gateway_port))]
        for name, argv in children + https.children(plain):
            stack.start(name, argv)
        _wait_for_web(stack, public_url)
        if not stack.stop_requested.is_set():
            _banner(public_url, gateway_url, admin, home, https.banner())
        while not stack.stop_requested.wait(0.2):
            reason = stack.supervise_once(time.monotonic())
            if reason is not None:
                say(f"ERROR: {reason}", sys.stderr)
                code = 1
                break
    except CliError as exc:
        say("ERROR: " + " ".join(line.strip() for line in exc.message.splitlines()), sys.stderr)
        code = 1
    finally:
        names = [child.name for child in reversed(stack.children) if child is not stack.gateway]
        if stack.redis is not None:
            names.append(stack.redis.name)
        if names:
            say("studio up: stopping the " + ", the ".join(names), sys.stderr)
        if stack.gateway is not None:
            stack.children.remove(stack.gateway)  # the data plane keeps serving (docs/operations.md)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
    return code


def _banner(public_url: str, gateway_url: str, admin: dict[str, str], home: Path, extra: list[str]) -> None:
    password = admin["password"] or ""
    say("")
    say(f"  Studio is up:  {public_url}")
    say(f"  Gateway:       {gateway_url}  (scoring URIs: {gateway_url}/endpoints/<name>/score)")
    say(f"  Admin:         {admin['user']}" + (f" / {password}" if password else "") + f"  {admin['password_note']}")
    say(f"  CLI config:    {admin['config']}  (try: studio online-endpoint list)")
    say(f"  Data:          {home}")
    for line in extra:
        say(line)
    say("  Press Ctrl-C to stop. The gateway and the instances keep serving; `studio down` stops them too.")
    say("")
