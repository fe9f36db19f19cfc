"""Loaded by pytest before Django reads its settings (`-p studio.pytest_plugin` in pyproject).

Gives the test run its own STUDIO_HOME, and a real Redis: REDIS_URL when set, else the embedded one
started here and stopped at the end. Two runs on one machine may share a PostgreSQL server and a
Redis (CI does), so each run has its own id: its test database is named after it (tests/conftest.py)
and every Redis key it writes starts with `studio-test:<id>:` (STUDIO_REDIS_PREFIX).

Redis is to each test what the database is: what one test wrote is gone before the next one starts.
Keys found under the prefix before a test (written after the previous test had ended, by something it
left running) and keys left when the run ends are deleted and fail the run, named. So are sessions on a
PostgreSQL test database still open after a test's teardown (a process or a thread it left running): each
is named with the process and thread that holds it, and closed, so the database can be dropped at the end.

It also prints pytest-randomly's seed, so a failing order can be run again.
"""

from __future__ import annotations

import gc
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from django.conf import settings
from psycopg.conninfo import make_conninfo

from apps.core.redis_server import EmbeddedRedis

RUN_ID = f"{os.getpid()}_{secrets.token_hex(4)}"  # not `random`: pytest-randomly seeds that, maybe alike in two runs
REDIS_PREFIX = f"studio-test:{RUN_ID}:"

_embedded: EmbeddedRedis | None = None
_home: Path | None = None
_client: redis.Redis | None = None
_admin: psycopg.Connection | None = None  # to the server's `postgres` database, for the session checks
_leaks: list[str] = []
_previous_test = "the start of the run"


def side_prefix(name: str) -> str:
    """A Redis prefix for a studio a test starts as its own process (`studio up`), apart from the run's
    per-test sweep yet under the run's name, so the end-of-run check still finds what it leaves."""
    return f"studio-test:{RUN_ID}-{name}:"


def run_database_name(base: str) -> str:
    """The run's own test database on a shared server."""
    return f"{base}_{RUN_ID}"


def delete_keys(prefix: str) -> list[str]:
    """Delete every key under `prefix`; return their names."""
    client = _redis()
    names = sorted(key.decode() for key in client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(names), 500):
        client.delete(*names[start : start + 500])
    return names


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=10, socket_connect_timeout=10)
    return _client


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    global _embedded, _home
    _home = Path(tempfile.mkdtemp(prefix="studio-test-home-"))
    os.environ["STUDIO_HOME"] = str(_home)
    os.environ["STUDIO_REDIS_PREFIX"] = REDIS_PREFIX
    # Tests run as root with fixtures in root-only temp folders; the tests of deployed code as a tenant
    # (tests/endpoints/test_tenant_isolation.py) turn it on themselves.
    os.environ.setdefault("STUDIO_TENANT_ISOLATION", "off")
    if not os.environ.get("REDIS_URL"):
        _embedded = EmbeddedRedis(_home / "run" / "redis.sock", persist=False)
        _embedded.start()
        os.environ["REDIS_URL"] = _embedded.url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None]:
    left = delete_keys(REDIS_PREFIX)
    if left:
        _leaks.append(f"Redis keys written after {_previous_test} had ended (now deleted): {', '.join(left)}")
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    global _previous_test
    try:
        return (yield)
    finally:  # after the test's fixtures are gone (gateways stopped, their last metrics pushed)
        delete_keys(REDIS_PREFIX)
        release_thread_connections()
        for holder in _close_stray_sessions():
            _leaks.append(f"{item.nodeid} left a session on the test database open ({holder}; now closed)")
        _previous_test = item.nodeid


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is gone: nothing of this run may be left in Redis."""
    left = delete_keys(f"studio-test:{RUN_ID}") if _client is not None else []
    if left:
        _leaks.append(f"Redis keys left at the end of the run (now deleted): {', '.join(left)}")
    for name in _drop_leftover_databases():
        _leaks.append(f"test database {name} was still there at the end of the run (now dropped)")
    if _leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def release_thread_connections() -> None:
    """Close the connections that threads other than the test's own hold for no one, after each test and before
    the test database is dropped (tests/conftest.py).

    An async test runs Django's sync code on asgiref's one thread-sensitive executor thread, which keeps its
    connection between tests (CONN_MAX_AGE) as a server thread keeps it between requests: closed as
    pytest-django closes the test thread's own. A thread that ended leaves its connection to the garbage
    collector (Django's connection objects hold reference cycles): collected now.
    """
    from asgiref.sync import SyncToAsync

    executor = SyncToAsync.single_thread_executor
    if settings.configured and getattr(executor, "_threads", None):
        from django.db import connections

        executor.submit(connections.close_all).result(timeout=30)
    gc.collect()


def _close_stray_sessions() -> list[str]:
    """Sessions on this run's PostgreSQL test database but the test thread's own (after
    `release_thread_connections`): whose they are, after closing them. What stays open a few seconds is a leak."""
    from django.db import connections

    global _admin
    connection = connections["default"]
    name = connection.settings_dict.get("NAME") or ""
    if connection.vendor != "postgresql" or not name.endswith(RUN_ID):
        return []
    if _admin is None:
        params = {key.lower(): str(connection.settings_dict[key]) for key in ("HOST", "PORT", "USER", "PASSWORD")
                  if connection.settings_dict.get(key)}  # fmt: skip
        _admin = psycopg.connect(make_conninfo(dbname="postgres", **params), autocommit=True)
    own = [connection.connection.info.backend_pid] if connection.connection is not None else []

    def others() -> list[tuple[int, int | None]]:
        assert _admin is not None
        query = "SELECT pid, client_port FROM pg_stat_activity WHERE datname = %s AND NOT pid = ANY(%s)"
        return [(row[0], row[1]) for row in _admin.execute(query, (name, own)).fetchall()]

    stray = others()
    deadline = time.monotonic() + 5  # a backend whose client has just gone takes a moment to end
    while stray and time.monotonic() < deadline:
        time.sleep(0.1)
        stray = others()
    holders = [_holder(pid, port) for pid, port in stray]
    for pid, _port in stray:
        _admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return holders


def _holder(backend_pid: int, client_port: int | None) -> str:
    """Which process (and, in this one, which thread) holds the session served by `backend_pid`."""
    owner = next(
        (c.pid for c in psutil.net_connections("tcp") if client_port and c.laddr and c.laddr.port == client_port), None
    )
    if owner is None:
        return f"backend {backend_pid}, client not found on this machine"
    if owner != os.getpid():
        try:
            return f"process {owner}: {' '.join(psutil.Process(owner).cmdline())[:160]}"
        except psutil.Error:
            return f"process {owner}"
    from django.db.backends.base.base import BaseDatabaseWrapper

    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for wrapper in (obj for obj in gc.get_objects() if isinstance(obj, BaseDatabaseWrapper)):
        raw = wrapper.connection
        if raw is not None and getattr(raw.info, "backend_pid", None) == backend_pid:
            thread = names.get(getattr(wrapper, "_thread_ident", None), "that has ended")
            return f"this test process, thread {thread!r}"
    return "this test process, outside Django's connections"


def _drop_leftover_databases() -> list[str]:
    """Test databases of this run still on a PostgreSQL server (pytest-django only warns when its drop fails)."""
    left: list[str] = []
    if not settings.configured:
        return left
    for db in settings.DATABASES.values():
        name = (db.get("TEST") or {}).get("NAME") or ""
        if db["ENGINE"] != "django.db.backends.postgresql" or not name.endswith(RUN_ID):
            continue
        params = {key.lower(): str(db[key]) for key in ("HOST", "PORT", "USER", "PASSWORD") if db.get(key)}
        with psycopg.connect(make_conninfo(dbname="postgres", **params), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                left.append(name)
    return left


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for leak in _leaks:
        terminalreporter.write_line(f"FAILED: {leak}", red=True)
    seed = _seed(terminalreporter.config)
    if seed is not None:
        terminalreporter.write_line(f"Random order: run this order again with --randomly-seed={seed}")


def pytest_collection_finish(session: pytest.Session) -> None:
    seed = _seed(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if seed is not None and reporter is not None:
        reporter.write_line(f"Random order, --randomly-seed={seed} (-p no:randomly for file order)")


def _seed(config: pytest.Config) -> int | None:
    if not config.pluginmanager.has_plugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, int) else None


def pytest_unconfigure(config: pytest.Config) -> None:
    if _client is not None:
        _client.close()
    if _admin is not None:
        _admin.close()
    if _embedded is not None:
        _embedded.stop()
        os.environ.pop("REDIS_URL", None)
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)
