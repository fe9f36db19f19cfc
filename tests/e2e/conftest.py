"""Browser tests: Debian's chromium (headless, through Playwright) against a real `studio up`.

One studio per test session, on free ports with its own STUDIO_HOME (SQLite and the embedded Redis
unless DATABASE_URL / REDIS_URL are set, as in CI's PostgreSQL run); stopped with Ctrl-C at the end.
Every page a test visits is screenshotted under tests/e2e/screenshots/ and can be checked with axe-core.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from studio.pytest_plugin import delete_keys, run_database_name, side_prefix

HERE = Path(__file__).parent
SCREENSHOTS = HERE / "screenshots"
AXE = HERE / "vendor" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
STUDIO = str(Path(sys.executable).with_name("studio"))
START_TIMEOUT_S = 120
ADMIN_PASSWORD = "e2e-admin-password-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Studio:
    url: str
    gateway_url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="package")
def studio() -> Iterator[Studio]:
    """A real `studio up` (web, gateway, worker) for the whole browser session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    # Short path: the embedded Redis listens on a unix socket under it (108-byte limit).
    home = Path(tempfile.mkdtemp(prefix="e2e-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if env.get("DATABASE_URL"):
        # A database of its own, so the suite's test database and this studio never meet.
        env["DATABASE_URL"] = _fresh_postgres(env["DATABASE_URL"])
    # Keys of its own in the run's Redis: its worker must not take the tasks the suite's tests queue.
    prefix = side_prefix("e2e")
    env.update({"STUDIO_HOME": str(home), "STUDIO_ADMIN_PASSWORD": ADMIN_PASSWORD, "STUDIO_REDIS_PREFIX": prefix})
    ports = (_free_port(), _free_port())
    log = home / "up.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [STUDIO, "up", "--port", str(ports[0]), "--gateway-port", str(ports[1])],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = Studio(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", home, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Studio is up" not in running.output():
            assert process.poll() is None, f"studio up exited with {process.returncode}:\n{running.output()}"
            assert time.monotonic() < deadline, f"studio up did not start:\n{running.output()}"
            time.sleep(0.2)
        yield running
    finally:
        leftovers = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        _kill_instances(home)
        shutil.rmtree(home, ignore_errors=True)
        delete_keys(prefix)
        if env.get("DATABASE_URL") and env["DATABASE_URL"] != os.environ.get("DATABASE_URL"):
            _drop_postgres(env["DATABASE_URL"])


def _fresh_postgres(url: str) -> str:
    """A new empty database next to the one DATABASE_URL names (dropped when the session ends)."""
    import psycopg

    base, _, _name = url.rpartition("/")
    name = run_database_name("studio_e2e")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _drop_postgres(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _kill_instances(home: Path) -> None:
    """Instances run in their own sessions and outlive `studio up` by design; the test's must not."""
    for proc in psutil.process_iter(["pid", "environ", "cmdline"]):
        environ = proc.info.get("environ") or {}
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if proc.pid != os.getpid() and (environ.get("STUDIO_HOME") == str(home) or str(home) in cmdline):
            try:
                proc.kill()
            except psutil.Error:
                pass


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@dataclass
class Session:
    """A signed-in browser tab that records console errors, takes screenshots and runs axe."""

    page: Any
    studio: Studio
    console_errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.studio.url + path)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe_serious(self) -> list[str]:
        """Serious and critical accessibility violations of the current page (axe-core)."""
        inject_axe(self.page)
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        return [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]


def inject_axe(page: Any) -> None:
    """Load axe-core into the page through the debugging protocol: the studio's CSP (script-src 'self')
    rightly refuses an injected <script> tag, and the test must not weaken it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())


def _sign_in(page: Any, studio: Studio) -> None:
    page.goto(studio.url + "/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(studio.url + "/endpoints/")


@pytest.fixture
def session(studio: Studio, chromium: Any) -> Iterator[Session]:
    """A 1280 px wide signed-in tab; the test fails if the browser console showed an error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    tab = Session(page, studio)
    page.on("console", lambda msg: tab.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: tab.console_errors.append(str(exc)))
    _sign_in(page, studio)
    yield tab
    context.close()
    assert not tab.console_errors, f"errors in the browser console: {tab.console_errors}"


def gateway_ready(studio: Studio) -> bool:
    try:
        httpx.get(studio.gateway_url + "/", timeout=2)
    except httpx.HTTPError:
        return False
    return True


def confirm(page: Any, question: str) -> None:
    """Answer the studio's confirmation dialog (a <dialog>, never the browser's confirm()) with its OK button."""
    dialog = page.locator("#confirm-dialog")
    dialog.locator("#confirm-message", has_text=question).wait_for()
    assert page.evaluate("document.getElementById('confirm-dialog').open")
    dialog.locator("#confirm-ok").click()


def cli(studio: Studio, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `studio` CLI against the test's studio; it must succeed."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["STUDIO_HOME"] = str(studio.home)
    done = subprocess.run([STUDIO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


BLUE_GREEN_SCORE_PY = "def init():\n    pass\n\ndef run(raw_data):\n    return {'ok': True}\n"


def blue_green(studio: Studio, folder: Path, endpoint: str, *, wait: bool) -> None:
    """An endpoint with deployments blue and green of one small score.py (with `wait`, until they have
    Succeeded; else only created) and no traffic yet."""
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(BLUE_GREEN_SCORE_PY)
    cli(studio, "online-endpoint", "create", "-n", endpoint)
    for name in ("blue", "green"):
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {endpoint}\n"
            "code_configuration:\n  code: ./code/\n  scoring_script: score.py\n"
            "environment:\n  image: python:3.11\ninstance_type: Standard_DS1_v2\ninstance_count: 1\n"
        )
        cli(studio, "online-deployment", "create", "-f", f"{name}.yml", *([] if wait else ["--no-wait"]), cwd=folder)
