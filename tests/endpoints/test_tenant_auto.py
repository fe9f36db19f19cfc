"""`STUDIO_TENANT_ISOLATION=auto` turns isolation on only where a tenant can reach STUDIO_HOME."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints import tenant

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="auto only isolates a studio that runs as root")


def _home_under(parent: Path, mode: int) -> Path:
    parent.mkdir(mode=mode)
    parent.chmod(mode)
    home = parent / "home"
    home.mkdir()
    return home


def test_auto_isolates_a_home_others_can_reach(settings: Any) -> None:
    root = Path("/tmp") / f"studio-auto-{os.getpid()}"
    try:
        settings.STUDIO_TENANT_ISOLATION = "auto"
        settings.STUDIO_HOME = str(_home_under(root, 0o755))
        tenant._reachable.cache_clear()
        assert tenant.enabled()
    finally:
        (root / "home").rmdir()
        root.rmdir()


def test_auto_stays_off_and_says_why_when_home_lies_in_a_private_folder(
    settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STUDIO_TENANT_ISOLATION = "auto"
    private = tmp_path / "private"
    settings.STUDIO_HOME = str(_home_under(private, 0o700))
    tenant._reachable.cache_clear()
    assert not tenant.enabled()
    assert f"lies in {private}, which other users cannot enter" in caplog.text
    settings.STUDIO_TENANT_ISOLATION = "on"
    assert tenant.enabled()  # `on` insists (and the start of an instance says what is unreachable)
