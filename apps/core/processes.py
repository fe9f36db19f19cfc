"""Helpers for the child processes the studio itself starts (not deployment instances, which outlive it)."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """Runs in a child before exec: if its parent is killed outright (SIGKILL), the child gets SIGTERM."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass  # not Linux: a clean stop still stops the child; only a SIGKILL of the parent would orphan it
