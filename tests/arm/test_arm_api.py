"""The Azure-shaped API's edges: the cloud metadata, bearer authentication, Azure's error shape."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.arm.conftest import WS


def test_the_cloud_metadata_names_this_studio_as_resource_manager_without_a_login(client: Any) -> None:
    response = client.get("/azure/metadata/endpoints?api-version=2019-05-01", secure=True)
    assert response.status_code == 200
    (cloud,) = response.json()
    assert cloud["resourceManager"] == "https://testserver/azure/"
    # The SDK picks the cloud whose resourceManager is part of the metadata URL it was given.
    assert cloud["resourceManager"] in "https://testserver/azure/metadata/endpoints"
    assert cloud["suffixes"]["storage"] == "local" and cloud["portal"].count(".") >= 2


def test_without_a_bearer_token_the_answer_is_azures_401(db: None) -> None:
    response = APIClient().get(f"{WS}/onlineEndpoints")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "AuthenticationFailed"
    assert "Authorization: Bearer" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert wrong.get(f"{WS}/onlineEndpoints").json()["error"]["code"] == "AuthenticationFailed"


def test_a_bad_body_is_a_400_naming_the_field_in_azures_shape(arm: Any) -> None:
    response = arm.put(f"{WS}/onlineEndpoints/ep1", {"properties": {"authMode": "Password"}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "UserError",
        "message": "properties.authMode: expected Key or AMLToken, got 'Password'",
        "target": "authMode",
        "details": [],
        "additionalInfo": [],
    }
    bad_name = arm.put(f"{WS}/onlineEndpoints/1-bad", {"properties": {"authMode": "Key"}}, format="json")
    assert bad_name.status_code == 400 and "name" in bad_name.json()["error"]["message"]


def test_a_missing_resource_is_azures_404_and_an_unknown_route_says_what_is_not_implemented(arm: Any) -> None:
    missing = arm.get(f"{WS}/onlineEndpoints/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "online endpoint 'nope' does not exist"
    unknown = arm.get(f"{WS}/batchEndpoints")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NotSupported"
    assert "GET /azure/subscriptions/s/" in unknown.json()["error"]["message"]


def test_an_endpoint_put_is_a_long_running_operation_polled_to_success(arm: Any) -> None:
    created = arm.put(f"{WS}/onlineEndpoints/ep1", {"properties": {"authMode": "Key"}}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["properties"]["authMode"] == "Key" and body["systemData"]["lastModifiedAt"]
    status = arm.get(created["Azure-AsyncOperation"].removeprefix("http://testserver"))
    assert status.json() == {"status": "Succeeded"}
    deleted = arm.delete(f"{WS}/onlineEndpoints/ep1")
    assert deleted.status_code == 202
    assert arm.get(deleted["Location"].removeprefix("http://testserver")).json() == {"status": "Succeeded"}
    assert arm.get(f"{WS}/onlineEndpoints/ep1").status_code == 404
