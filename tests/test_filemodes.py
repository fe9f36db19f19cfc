"""The start-up check of STUDIO_HOME: anything other users can read is named and narrowed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from apps.core import filemodes


def test_secure_start_names_and_narrows_what_others_can_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    database = home / "studio.sqlite3"
    database.write_text("rows")
    database.chmod(0o644)
    aof = home / "run" / "appendonly.aof"
    aof.write_text("SET key")
    aof.chmod(0o640)
    secret = home / "secret_key"
    secret.write_text("s")
    secret.chmod(0o600)
    home.chmod(0o755)
    previous = os.umask(0o022)
    try:
        with caplog.at_level(logging.WARNING):
            wide = filemodes.secure_start(home)
        created = home / "later.log"
        created.write_text("x")
        assert created.stat().st_mode & 0o077 == 0  # the umask is the studio's from now on
    finally:
        os.umask(previous)

    assert set(wide) == {home, home / "run", database, aof}
    assert str(database) in caplog.text and str(aof) in caplog.text and str(secret) not in caplog.text
    assert [path for path in (home, database, aof, secret) if path.stat().st_mode & 0o077] == []
    assert filemodes.wider_than_allowed(home) == []
