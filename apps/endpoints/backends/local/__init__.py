"""The local backend: each instance is a `python -m runtime` process on 127.0.0.1, in a cached environment.

- `supervisor.py`: what to do, as a pure function of what runs, the spec and the clock;
- `backend.py`: `LocalBackend`, which carries it out with processes, files and probes;
- `processes.py`: starting, stopping, probing and measuring the processes;
- `state.py`: the per-instance `state.json` that lets a new worker re-adopt running instances.
"""

from __future__ import annotations

from apps.endpoints.backends.local.backend import SUPERVISE_WAIT_S, LocalBackend, policy_from_settings
from apps.endpoints.backends.local.supervisor import Policy

__all__ = ["SUPERVISE_WAIT_S", "LocalBackend", "Policy", "policy_from_settings"]
