"""What `studio up` does when one of its children exits: a pure decision, tested without processes.

A child that ran for a while and then exited (killed, crashed, out of memory) is restarted after a short
back-off. A child that exits soon after it was started failed at start; each such failure doubles the
back-off, and after `max_start_failures` in a row `studio up` gives up, says which child and why, and stops.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """How patient `studio up` is with a child (STUDIO_UP_* variables shorten it in tests)."""

    backoff_s: float = 0.5  # the first restart's delay; doubled per failure at start
    backoff_max_s: float = 10.0
    healthy_after_s: float = 10.0  # a child that ran this long had started fine
    max_start_failures: int = 5

    @classmethod
    def from_env(cls) -> Policy:
        """Read STUDIO_UP_BACKOFF_MS, STUDIO_UP_HEALTHY_AFTER_S and STUDIO_UP_MAX_START_FAILURES."""
        return cls(
            backoff_s=_number("STUDIO_UP_BACKOFF_MS", cls.backoff_s * 1000) / 1000,
            healthy_after_s=_number("STUDIO_UP_HEALTHY_AFTER_S", cls.healthy_after_s),
            max_start_failures=int(_number("STUDIO_UP_MAX_START_FAILURES", cls.max_start_failures)),
        )


@dataclass(frozen=True)
class Decision:
    """Restart after `delay_s`, or give up (`restart` False); `start_failures` is the new count in a row."""

    restart: bool
    delay_s: float
    start_failures: int


def after_exit(policy: Policy, *, ran_s: float, start_failures: int) -> Decision:
    """What to do about a child that exited after running `ran_s` seconds, with `start_failures` before it."""
    if ran_s >= policy.healthy_after_s:
        return Decision(restart=True, delay_s=policy.backoff_s, start_failures=0)
    failures = start_failures + 1
    if failures >= policy.max_start_failures:
        return Decision(restart=False, delay_s=0.0, start_failures=failures)
    return Decision(
        restart=True, delay_s=min(policy.backoff_max_s, policy.backoff_s * 2**failures), start_failures=failures
    )


def describe_exit(code: int | None) -> str:
    """`exited with code 1`, `was killed by signal 9 (SIGKILL)`, or `exited` when the code is unknown."""
    if code is None:
        return "exited"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by signal {-code} ({name})"
    return f"exited with code {code}"


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {raw}")
    return value
