"""Where a running gateway's routing table comes from: the studio's database and Redis.

The one module of `gateway/` that imports Django or `apps/` (pyproject.toml's import contracts hold that):
it sets Django up for the ORM, reads the rows through `apps.endpoints.selectors.routing_rows` (plain data,
`gateway/wire.py`'s shapes) and names the Redis change feed that says when to read them again. Everything it
does runs at start-up or on the gateway's table thread, never on a request's path.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import django
from django.apps import apps as django_apps
from django.conf import settings
from django.db import close_old_connections, connections

from gateway.routing import RoutingTable, table_from_rows
from gateway.wire import ROUTING_CHANNEL, ROUTING_VERSION_KEY


def setup() -> None:
    """Make the ORM usable (settings, app registry) when the gateway runs on its own."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    if not django_apps.ready:
        django.setup()


class DatabaseSource:
    """The routing table read from the studio's database (a `config.TableSource`)."""

    version_key = ROUTING_VERSION_KEY
    channel = ROUTING_CHANNEL

    def __init__(self) -> None:
        setup()

    def redis_url(self) -> str:
        """The studio's REDIS_URL."""
        return str(settings.REDIS_URL)

    def load(self, names: Collection[str] | None = None) -> RoutingTable:
        """Every endpoint (or the named ones), its deployments and ready instances (blocking: call it off the loop)."""
        # Imported here, not above: selectors import the models, which need setup() to have run first.
        from apps.endpoints.selectors import routing_rows

        close_old_connections()  # a reload after a database restart must not reuse the dead connection
        return table_from_rows(routing_rows(names=names))

    def close(self) -> None:
        """Close this thread's database connection (a dropped test database must not see it)."""
        connections.close_all()
