"""What the local backend remembers of each instance: a `state.json` per instance folder.

The files let a restarted worker (or a second one) re-adopt running processes instead of starting
duplicates. Their format is kept stable across versions: an upgraded studio adopts the instances
that the previous version started.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass(frozen=True)
class InstanceState:
    """One instance as remembered in its state.json (times are seconds since the epoch)."""

    name: str
    index: int
    template: str
    generation: int
    port: int = 0
    pid: int | None = None
    create_time: float | None = None  # the process's, checked so a reused pid is never adopted
    started_at: str = ""  # ISO 8601
    phase: str = "Pending"
    ready: bool = False
    ever_ready: bool = False
    restarts: int = 0
    crashes: int = 0  # in a row; the back-off grows with it
    next_start: float = 0.0  # when a crashed instance may start again
    ready_ok: int = 0
    ready_fail: int = 0
    live_fail: int = 0
    last_probe: float = 0.0
    reason: str = ""
    message: str = ""


_KNOWN = {item.name for item in fields(InstanceState)}


def load(deployment_dir: Path) -> dict[str, InstanceState]:
    """Every instance of the deployment whose state file can be read, by name."""
    states: dict[str, InstanceState] = {}
    for path in sorted(deployment_dir.glob(f"*/{STATE_FILE}")):
        try:
            raw = json.loads(path.read_text())
            state = InstanceState(**{key: value for key, value in raw.items() if key in _KNOWN})
        except (ValueError, TypeError, AttributeError):
            logger.warning("ignoring an unreadable instance state file %s", path)
            continue
        states[state.name] = state
    return states


def save(deployment_dir: Path, state: InstanceState) -> None:
    """Write the instance's state file atomically (a reader never sees half a file)."""
    folder = deployment_dir / state.name
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f"{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(state)))
    temporary.replace(folder / STATE_FILE)


@contextmanager
def locked(deployment_dir: Path) -> Iterator[None]:
    """Only one process acts on a deployment's instances at a time (a second worker, `studio up`)."""
    deployment_dir.mkdir(parents=True, exist_ok=True)
    with open(deployment_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
