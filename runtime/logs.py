"""Log lines in azmlinfsrv's format: `<UTC time> <level letter> [<pid>] <logger> - <message>`."""

from __future__ import annotations

import asyncio
import atexit
import builtins
import functools
import logging
import sys
import time
from typing import Any

# Logger names are azmlinfsrv's so that log filters and dashboards written for Azure keep working.
LOGGER_NAME = "azmlinfsrv"
FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"

logger = logging.getLogger(LOGGER_NAME)
_print_logger = logging.getLogger(f"{LOGGER_NAME}.print")
_builtin_print = builtins.print


class UTCFormatter(logging.Formatter):
    """Formats times in UTC, as Azure's inference server does."""

    converter = time.gmtime  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(fmt=FORMAT)


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line into a buffer and flushes it once per event-loop turn, not once per line.

    One write(2) per request was a third of the time spent answering a small request; lines still reach
    stdout within the same loop turn, in order. Outside a running loop (start-up, failures) it flushes at once.
    """

    def __init__(self) -> None:
        # Our own buffered writer on stdout's descriptor: sys.stdout may be unbuffered (PYTHONUNBUFFERED).
        stream = open(sys.stdout.fileno(), "w", buffering=1 << 16, encoding="utf-8", errors="replace", closefd=False)
        super().__init__(stream)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        atexit.register(self._flush_now)

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Batch flushes on this loop (None: flush every line again)."""
        self._flush_now()
        self._loop = loop

    def flush(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._flush_now()
        elif not self._pending:
            self._pending = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._pending = False
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout went away (closed pipe): nothing sensible left to do with log lines


_handler: BatchingHandler | None = None


def configure(level: str = "INFO") -> None:
    """Send the server's loggers to stdout in the Azure format; idempotent."""
    global _handler
    if _handler is not None:
        return
    _handler = BatchingHandler()
    _handler.setFormatter(UTCFormatter())
    logger.addHandler(_handler)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    logger.propagate = False


def batch_on(loop: asyncio.AbstractEventLoop | None) -> None:
    """Flush log lines once per turn of `loop` (None: at every line, e.g. before exiting or forking)."""
    if _handler is not None:
        _handler.attach(loop)


def flush() -> None:
    """Write out pending log lines now."""
    if _handler is not None:
        _handler._flush_now()


def access(message: str) -> None:
    """An INFO line from the `azmlinfsrv` logger without looking up the caller's frame (hot path)."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logger.makeRecord(LOGGER_NAME, logging.INFO, "", 0, message, (), None))


@functools.wraps(_builtin_print)
def _print_to_log(
    *objects: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    # Only what the script prints to stdout becomes a log line; explicit files (stderr, open files) are left alone.
    if file is None or file is sys.stdout:
        _print_logger.info((" " if sep is None else sep).join(map(str, objects)))
    else:
        _builtin_print(*objects, sep=sep, end=end, file=file, flush=flush)


def capture_print() -> None:
    """Turn the scoring script's print() calls into `azmlinfsrv.print` log lines with timestamps."""
    builtins.print = _print_to_log
