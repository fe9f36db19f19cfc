"""Suite-wide fixtures. The database is real (SQLite, or PostgreSQL when DATABASE_URL is set) and so
is Redis (see studio/pytest_plugin.py). Every test gets its own media and instance folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest


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
    if _transactional(request):
        _seed_catalog()
    yield


def _transactional(request: pytest.FixtureRequest) -> bool:
    """Transactional tests start from a flushed database, without the catalog the migration seeded."""
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        return True
    return any(mark.name == "django_db" and mark.kwargs.get("transaction") for mark in request.node.iter_markers())


def _seed_catalog() -> None:
    from django.apps import apps

    import_module("apps.endpoints.migrations.0003_instancetype").seed(apps, None)
    import_module("apps.costs.migrations.0004_instanceprice").seed_prices(apps, None)


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
