"""Moving the test database to older migrations and back, for tests of data migrations (and `latest` in conftest)."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    """Migrate the test database to `targets` (forwards or backwards) with Django's own executor."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # the applied set has changed
    return executor
