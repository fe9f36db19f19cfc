"""Shared set-up of the metrics benchmarks: a throw-away STUDIO_HOME, Django on SQLite (or DATABASE_URL),
and a Redis (REDIS_URL, or the embedded one started here and stopped at exit)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup() -> None:
    """Point the studio at a temporary home, start Redis if needed, migrate the database."""
    sys.path.insert(0, str(REPO))
    home = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["STUDIO_HOME"] = str(home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    if not os.environ.get("REDIS_URL"):
        from apps.core.redis_server import EmbeddedRedis

        redis = EmbeddedRedis(home / "run" / "redis.sock", persist=False)
        redis.start()
        atexit.register(redis.stop)
        os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def database_label() -> str:
    from django.db import connection

    return f"{connection.vendor} {connection.settings_dict.get('NAME')}"
