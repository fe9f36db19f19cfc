"""No lost update: every endpoint and deployment has a version (etag); a write based on an older one is refused."""

from __future__ import annotations

from typing import Any

import pytest

from apps.endpoints import services
from tests import factories

pytestmark = pytest.mark.django_db


def error(response: Any) -> str:
    return response.json()["error"]["message"]


@pytest.fixture
def ep(db: None) -> Any:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    return services.traffic_set(endpoint=endpoint, traffic={"blue": 90, "green": 10})


def test_get_shows_the_version_as_etag_in_body_and_header(api: Any, ep: Any) -> None:
    response = api.get("/api/v1/online-endpoints/ep1")
    assert response.status_code == 200
    assert response["ETag"] == f'"{response.json()["etag"]}"'
    deployment = api.get("/api/v1/online-endpoints/ep1/deployments/blue")
    assert deployment["ETag"] == f'"{deployment.json()["etag"]}"' == '"1"'


def test_patch_with_a_stale_if_match_is_refused_with_412_naming_what_changed_by_whom(api: Any, ep: Any) -> None:
    etag = api.get("/api/v1/online-endpoints/ep1")["ETag"]
    bob = factories.user("bob")
    services.traffic_set(endpoint=ep, traffic={"blue": 50, "green": 50}, user=bob)

    stale = api.patch(
        "/api/v1/online-endpoints/ep1", {"traffic": {"blue": 90, "green": 10}}, format="json", HTTP_IF_MATCH=etag
    )

    assert stale.status_code == 412
    message = error(stale)
    assert message.startswith(f"online endpoint 'ep1' changed since version {etag.strip(chr(34))}")
    assert "traffic blue=90 green=10 → blue=50 green=50 by bob at " in message
    assert api.get("/api/v1/online-endpoints/ep1").json()["traffic"] == {"blue": 50, "green": 50}


def test_patch_with_the_current_etag_applies_and_moves_the_etag(api: Any, ep: Any) -> None:
    etag = api.get("/api/v1/online-endpoints/ep1")["ETag"]
    done = api.patch(
        "/api/v1/online-endpoints/ep1", {"traffic": {"blue": 0, "green": 100}}, format="json", HTTP_IF_MATCH=etag
    )
    assert done.status_code == 200, done.content
    assert done["ETag"] != etag
    assert done.json()["traffic"] == {"blue": 0, "green": 100}


def test_patch_without_if_match_is_last_writer_wins(api: Any, ep: Any) -> None:
    services.traffic_set(endpoint=ep, traffic={"blue": 50, "green": 50})
    done = api.patch("/api/v1/online-endpoints/ep1", {"traffic": {"blue": 100, "green": 0}}, format="json")
    assert done.status_code == 200
    assert done.json()["traffic"] == {"blue": 100, "green": 0}


def test_deployment_patch_with_a_stale_etag_names_the_instance_count_change(api: Any, ep: Any) -> None:
    url = "/api/v1/online-endpoints/ep1/deployments/blue"
    etag = api.get(url)["ETag"]
    blue = ep.deployments.get(name="blue")
    services.deployment_scale(deployment=blue, instance_count=3, reason="by hand", user=factories.user("carol"))
    stale = api.patch(url, {"instance_count": 2}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert "deployment 'blue' of 'ep1' changed since version 1: it is at version 2 after instance_count 1 → 3" in error(
        stale
    )
    assert "by carol" in error(stale)


def test_a_malformed_if_match_is_a_400_naming_the_header(api: Any, ep: Any) -> None:
    bad = api.patch("/api/v1/online-endpoints/ep1", {"description": "x"}, format="json", HTTP_IF_MATCH="yesterday")
    assert bad.status_code == 400
    assert error(bad) == "If-Match: expected an etag such as \"4\", got 'yesterday'"
