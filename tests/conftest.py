"""Suite-wide fixtures. The database is real (SQLite, or PostgreSQL when DATABASE_URL is set) and so
is Redis (see studio/pytest_plugin.py). Every test gets its own media and instance folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from studio.pytest_plugin import release_thread_connections, run_database_name
from tests.migrations import migrate


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A database server shared with other runs gets this run's own test database, dropped at its end.

    (SQLite's test file already lives under the run's own STUDIO_HOME.)
    """
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db["ENGINE"] != "django.db.backends.sqlite3":
            test = db.setdefault("TEST", {})
            test["NAME"] = run_database_name(test.get("NAME") or f"test_{db['NAME']}")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and before it drops the test database at the end: what other threads still hold on to
    is let go (else PostgreSQL refuses the drop while a session is open; studio/pytest_plugin.py)."""
    yield
    release_thread_connections()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test starts from the rows the migrations wrote, whatever ran before it.

    A transactional test ends with a flush. Without serialized rollback Django then re-creates content
    types and permissions (post_migrate) under new ids but not the migrations' data (the catalog); with
    it, the flush leaves the tables empty and the next such test reloads the rows saved right after
    migrating. A mix of the two fails the second kind after the first: the re-created content types
    collide with the saved ones (UNIQUE constraint failed: django_content_type). So all of them restore.
    Tests on the plain `db` fixture run before every transactional one (pytest-django orders them so,
    also after pytest-randomly's shuffle), inside a transaction that rolls back.
    """
    for item in items:
        if _transactional(item):
            marker = item.get_closest_marker("django_db")
            kwargs = {**(marker.kwargs if marker else {}), "transaction": True, "serialized_rollback": True}
            item.add_marker(pytest.mark.django_db(*(marker.args if marker else ()), **kwargs), append=False)


@pytest.fixture(autouse=True)
def _isolated_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test that touches Django writes uploads, models and instances under its own folder."""
    if not _uses_django(request):
        yield
        return
    settings = request.getfixturevalue("settings")
    home = tmp_path_factory.mktemp("studio-home")
    settings.MEDIA_ROOT = home / "media"
    settings.STUDIO_INSTANCES_DIR = home / "instances"
    yield


def _transactional(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    if "transactional_db" in fixtures or "live_server" in fixtures:
        return True
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction"))


def _uses_django(request: pytest.FixtureRequest) -> bool:
    if any(mark.name == "django_db" for mark in request.node.iter_markers()):
        return True
    return any(
        name in request.fixturenames for name in ("db", "transactional_db", "client", "admin_client", "settings")
    )


@pytest.fixture
def api(db: None) -> Any:
    """A REST client signed in with an API token, as the CLI is."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests import factories

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=factories.user())
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def latest() -> Iterator[list[tuple[str, str]]]:
    """The newest migrations, re-applied after a test that migrated the database back, whatever it did."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield leaves
    migrate(leaves)
