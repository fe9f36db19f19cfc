"""Worker processes: boot (load the script, run init()), listen, serve; and the supervisor for --worker_count N."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from runtime import logs
from runtime.app import ScoringApp, build_app
from runtime.config import Settings
from runtime.scoring import ScriptError
from runtime.server import listening_socket, new_event_loop, serve

logger = logging.getLogger("azmlinfsrv")

BOOT_FAILED = 3  # gunicorn's "worker failed to boot", the code azmlinfsrv exits with
MODEL_LISTING_LIMIT = 200


def run(settings: Settings) -> int:
    """Serve until stopped; the exit code is 3 when the script cannot be loaded or initialised."""
    if settings.worker_count == 1:
        return _run_single(settings)
    return _supervise(settings)


def _run_single(settings: Settings) -> int:
    # Bind before init() so a busy port fails at once; listen after it so nobody connects to a half-ready server.
    try:
        sock = listening_socket(settings.host, settings.port, listen=False)
    except OSError as ex:
        logger.error(f"Cannot listen on {settings.host}:{settings.port}: {ex}")
        return 1
    app = boot(settings)
    if app is None:
        return BOOT_FAILED
    sock.listen(2048)
    _ready(settings)
    serve(sock, app, new_event_loop(), settings.limits)
    return 0


def _run_worker(settings: Settings) -> int:
    app = boot(settings)
    if app is None:
        return BOOT_FAILED
    # Each worker has its own listening socket on the shared port: the kernel spreads connections between them.
    sock = listening_socket(settings.host, settings.port, reuse_port=True)
    _ready(settings)
    serve(sock, app, new_event_loop(), settings.limits)
    return 0


def _ready(settings: Settings) -> None:
    logger.info(f"Scoring timeout is set to {settings.scoring_timeout_ms}")
    logger.info(f"Worker with pid {os.getpid()} ready for serving traffic")


def boot(settings: Settings) -> ScoringApp | None:
    """Load the script and run init(); on failure log what Azure logs and return None."""
    logs.capture_print()
    try:
        return build_app(settings)
    except ScriptError as ex:
        logger.error("User's init function failed")
        logger.error(f"Encountered Exception {''.join(traceback.format_exception(ex))}")
        _log_model_dir(settings.model_dir)
        return None


def _log_model_dir(model_dir: str) -> None:
    if not model_dir or not os.path.exists(model_dir):
        logger.info(f"Model Directory {model_dir!r} does not exist.")
        return
    logger.info("Model Directory Contents:")
    tree = _walk(Path(model_dir))
    for line in itertools.islice(tree, MODEL_LISTING_LIMIT):
        logger.info(line)
    if next(tree, None) is not None:
        logger.info(f"Output Truncated. First {MODEL_LISTING_LIMIT} lines shown.")


def _walk(path: Path, depth: int = 0) -> Iterator[str]:
    indent = "    " * depth
    if path.is_dir():
        yield f"{indent}{path.name or str(path)}{os.sep}"
        for child in sorted(path.iterdir()):
            yield from _walk(child, depth + 1)
    else:
        yield f"{indent}{path.name}"


def _supervise(settings: Settings) -> int:
    # Holding the port (bound, never listening) makes a busy port fail at once and keeps it ours between restarts.
    try:
        reservation = listening_socket(settings.host, settings.port, reuse_port=True, listen=False)
    except OSError as ex:
        logger.error(f"Cannot listen on {settings.host}:{settings.port}: {ex}")
        return 1
    logger.info(f"Starting {settings.worker_count} workers on {settings.host}:{settings.port} (pid {os.getpid()})")
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        logs.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                reservation.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = _run_worker(settings)
            except BaseException:
                traceback.print_exc()
            finally:
                logs.flush()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        logger.info(f"Booting worker with pid: {pid}")
        children.add(pid)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _kill(pid, signal.SIGTERM)

    for _ in range(settings.worker_count):
        spawn()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            continue
        if code == BOOT_FAILED:
            logger.error(f"Worker (pid:{pid}) exited with code {BOOT_FAILED}.")
            logger.error("Shutting down: Master")
            logger.error("Reason: Worker failed to boot.")
            exit_code = BOOT_FAILED
            stop(signal.SIGTERM, None)
            continue
        logger.error(f"Worker (pid:{pid}) exited with code {code}; starting a new one.")
        time.sleep(1.0)  # a worker that dies at once must not turn into a fork loop
        if not stopping:
            spawn()
    reservation.close()
    return exit_code


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
