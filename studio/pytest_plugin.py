"""Loaded by pytest before Django reads its settings (`-p studio.pytest_plugin` in pyproject).

Gives the test run its own STUDIO_HOME, and a real Redis: REDIS_URL when set, else the embedded
one started here and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from apps.core.redis_server import EmbeddedRedis

_embedded: EmbeddedRedis | None = None
_home: Path | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    global _embedded, _home
    _home = Path(tempfile.mkdtemp(prefix="studio-test-home-"))
    os.environ["STUDIO_HOME"] = str(_home)
    if not os.environ.get("REDIS_URL"):
        _embedded = EmbeddedRedis(_home / "run" / "redis.sock", persist=False)
        _embedded.start()
        os.environ["REDIS_URL"] = _embedded.url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.stop()
        os.environ.pop("REDIS_URL", None)
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)
