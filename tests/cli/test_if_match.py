"""`studio ... update` is last writer wins, as `az ml` is, unless --if-match names the etag it read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.endpoints import services
from tests import factories
from tests.cli.conftest import Result, assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def test_update_with_a_stale_if_match_is_refused_and_without_it_wins(studio: Callable[..., Result]) -> None:
    ep = factories.endpoint("ep1")
    factories.deployment(ep, "blue")
    factories.deployment(ep, "green")
    services.traffic_set(endpoint=ep, traffic={"blue": 90, "green": 10})
    etag = studio("online-endpoint", "show", "-n", "ep1", "--query", "etag").json()
    services.traffic_set(endpoint=ep, traffic={"blue": 50, "green": 50}, user=factories.user("bob"))

    stale = studio("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=90 green=10", "--if-match", etag)
    assert_error(stale, f"online endpoint 'ep1' changed since version {etag}: it is at version {int(etag) + 1} after")
    assert "blue=50 green=50 by bob" in stale.stderr

    fresh = studio("online-endpoint", "show", "-n", "ep1", "--query", "etag").json()
    done = studio("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=80 green=20", "--if-match", fresh)
    assert done.code == 0, done.stderr
    blind = studio("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=70 green=30")
    assert blind.code == 0, blind.stderr
    shown: Any = studio("online-endpoint", "show", "-n", "ep1", "--query", "traffic").json()
    assert shown == {"blue": 70, "green": 30}
