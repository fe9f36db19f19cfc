"""Every rule of the control plane, sent through the REST API as a user's CLI or CI would."""

from __future__ import annotations

import io
import tarfile
import zipfile
from typing import Any

import pytest

from apps.endpoints import selectors
from apps.endpoints.models import Deployment, Endpoint
from apps.endpoints.tokens import verify_token
from tests import factories

pytestmark = pytest.mark.django_db


def error(response: Any) -> str:
    return response.json()["error"]["message"]


def create_endpoint(api: Any, **spec: Any) -> Any:
    return api.post("/api/v1/online-endpoints", {"name": "ep1", **spec}, format="json")


def create_deployment(api: Any, endpoint: str = "ep1", **overrides: Any) -> Any:
    url = f"/api/v1/online-endpoints/{endpoint}/deployments"
    return api.post(url, factories.deployment_spec(**overrides), format="json")


# --- endpoints ---


def test_endpoint_create_accepts_azure_yaml_keys_and_shows_read_only_ones(api: Any) -> None:
    response = create_endpoint(
        api,
        **{
            "$schema": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
            "auth_mode": "key",
            "description": "my endpoint",
            "tags": {"team": "fraud", "tier": 1},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "ep1"
    assert body["auth_mode"] == "key"
    assert body["tags"] == {"team": "fraud", "tier": "1"}
    assert body["provisioning_state"] == "Succeeded"
    assert body["scoring_uri"].endswith("/endpoints/ep1/score")
    assert body["openapi_uri"].endswith("/endpoints/ep1/swagger.json")
    assert body["traffic"] == {}
    assert api.get("/api/v1/online-endpoints/ep1").json()["description"] == "my endpoint"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ep", "name: must be 3 to 32 characters long, got 'ep' (2)"),
        ("e" * 33, "name: must be 3 to 32 characters long"),
        ("1ep", "name: must start with a letter and contain only letters, digits and single dashes"),
        ("my--ep", "name: must start with a letter"),
        ("my-ep-", "name: must start with a letter"),
        ("my_ep", "name: must start with a letter"),
    ],
)
def test_endpoint_name_rules_are_enforced(api: Any, name: str, message: str) -> None:
    response = create_endpoint(api, name=name)
    assert response.status_code == 400
    assert error(response).startswith(message)
    assert response.json()["error"]["field"] == "name"


def test_endpoint_unknown_key_is_refused_naming_the_key(api: Any) -> None:
    response = create_endpoint(api, auth_mod="key")
    assert response.status_code == 400
    assert error(response).startswith("auth_mod: unknown key; expected one of: $schema, auth_mode, compute")


def test_endpoint_wrong_type_is_refused_with_what_is_expected(api: Any) -> None:
    response = create_endpoint(api, auth_mode="password")
    assert response.status_code == 400
    assert error(response) == "auth_mode: expected one of key, aml_token, aad_token, got 'password'"
    response = create_endpoint(api, tags=["a"])
    assert error(response) == "tags: expected a mapping of names to values, got a list"


def test_endpoint_missing_name_is_refused(api: Any) -> None:
    response = api.post("/api/v1/online-endpoints", {"auth_mode": "key"}, format="json")
    assert response.status_code == 400
    assert error(response) == "name: required key is missing (expected a string)"


def test_endpoint_name_taken_is_a_conflict(api: Any) -> None:
    create_endpoint(api)
    response = create_endpoint(api)
    assert response.status_code == 409
    assert error(response) == "online endpoint 'ep1' already exists; use update to change it"


def test_endpoint_traffic_cannot_be_set_at_create(api: Any) -> None:
    response = create_endpoint(api, traffic={"blue": 100})
    assert response.status_code == 400
    assert "cannot be set when the endpoint is created" in error(response)


def test_unknown_endpoint_is_404_with_its_name(api: Any) -> None:
    response = api.get("/api/v1/online-endpoints/nope-ep")
    assert response.status_code == 404
    assert error(response) == "online endpoint 'nope-ep' does not exist"


def test_api_refuses_requests_without_credentials(db: None) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/online-endpoints")
    assert response.status_code == 401


def test_openapi_schema_is_served(api: Any) -> None:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/online-endpoints/{name}/deployments" in response.json()["paths"]


# --- traffic and mirroring ---


@pytest.fixture
def two_deployments(api: Any) -> Endpoint:
    endpoint = factories.endpoint()
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    factories.deployment(endpoint, "shadow")
    return endpoint


def patch_endpoint(api: Any, **changes: Any) -> Any:
    return api.patch("/api/v1/online-endpoints/ep1", changes, format="json")


def test_traffic_split_is_stored_and_recorded_in_history(api: Any, two_deployments: Endpoint) -> None:
    response = patch_endpoint(api, traffic={"blue": 90, "green": 10})
    assert response.status_code == 200, response.content
    assert response.json()["traffic"] == {"blue": 90, "green": 10, "shadow": 0}
    change = selectors.traffic_changes(endpoint=two_deployments).get()
    assert change.traffic_after == {"blue": 90, "green": 10, "shadow": 0}
    assert change.user.username == "alice"
    history = api.get("/api/v1/online-endpoints/ep1/traffic-changes").json()["results"]
    assert history[0]["traffic_after"]["blue"] == 90


def test_traffic_must_sum_to_0_or_100(api: Any, two_deployments: Endpoint) -> None:
    response = patch_endpoint(api, traffic={"blue": 80, "green": 10})
    assert response.status_code == 400
    assert error(response) == "traffic: must sum to 0 or 100, got 90 (blue=80 green=10)"


def test_traffic_must_name_existing_deployments(api: Any, two_deployments: Endpoint) -> None:
    response = patch_endpoint(api, traffic={"blue": 50, "purple": 50})
    assert response.status_code == 400
    assert error(response) == "traffic: names deployment 'purple', which does not exist in online endpoint 'ep1'"


def test_traffic_percent_must_be_whole_0_to_100(api: Any, two_deployments: Endpoint) -> None:
    response = patch_endpoint(api, traffic={"blue": 150})
    assert error(response) == "traffic.blue: expected a whole percentage from 0 to 100, got 150"


def test_mirror_goes_to_one_deployment_only(api: Any, two_deployments: Endpoint) -> None:
    patch_endpoint(api, traffic={"blue": 100})
    response = patch_endpoint(api, mirror_traffic={"green": 10, "shadow": 10})
    assert response.status_code == 400
    assert error(response) == "mirror_traffic: can go to one deployment only, got 2: green=10 shadow=10"


def test_mirror_is_at_most_50_percent(api: Any, two_deployments: Endpoint) -> None:
    patch_endpoint(api, traffic={"blue": 100})
    response = patch_endpoint(api, mirror_traffic={"green": 60})
    assert error(response) == "mirror_traffic: can be at most 50 percent, got green=60"


def test_mirror_never_targets_a_deployment_with_live_traffic(api: Any, two_deployments: Endpoint) -> None:
    patch_endpoint(api, traffic={"blue": 90, "green": 10})
    response = patch_endpoint(api, mirror_traffic={"green": 10})
    assert response.status_code == 400
    assert error(response) == (
        "mirror_traffic: deployment 'green' takes 10 % of live traffic; "
        "a deployment cannot take live and mirrored traffic"
    )


def test_mirror_set_and_reset_with_zero(api: Any, two_deployments: Endpoint) -> None:
    patch_endpoint(api, traffic={"blue": 100})
    assert patch_endpoint(api, mirror_traffic={"shadow": 10}).json()["mirror_traffic"] == {"shadow": 10}
    assert patch_endpoint(api, mirror_traffic={"shadow": 0}).json()["mirror_traffic"] == {}


# --- deployments ---


def test_deployment_create_fills_azure_defaults_and_starts_creating(api: Any) -> None:
    factories.endpoint()
    response = create_deployment(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provisioning_state"] == "Creating"
    assert body["model"] == "azureml:sklearn-model:1"
    assert body["request_settings"] == {
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }
    assert body["liveness_probe"] == {
        "initial_delay": 10,
        "period": 10,
        "timeout": 2,
        "success_threshold": 1,
        "failure_threshold": 30,
    }
    assert body["scale_settings"] == {"type": "default"}
    assert api.get("/api/v1/online-endpoints/ep1").json()["traffic"] == {"blue": 0}
    events = api.get("/api/v1/online-endpoints/ep1/deployments/blue/events").json()["results"]
    assert events[0]["reason"] == "Creating"


def test_deployment_inline_model_and_environment_are_registered(api: Any) -> None:
    factories.endpoint()
    model_upload = factories.upload_file(b"w", name="model.pkl")
    response = create_deployment(
        api,
        model={"path": f"upload:{model_upload.uid}"},
        environment={"image": "python:3.11", "conda_file": {"dependencies": ["python=3.11", {"pip": ["numpy"]}]}},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model"] == "azureml:ep1-blue-model:1"
    assert body["environment"].startswith("azureml:CliV2AnonymousEnvironment:")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instance_count": 0}, "instance_count: expected an integer from 1 to 50, got 0"),
        ({"instance_count": "two"}, "instance_count: expected an integer from 1 to 50, got 'two'"),
        ({"instance_type": "Standard_Z99"}, "instance_type: unknown size 'Standard_Z99'; known sizes: "),
        ({"model": "azureml:missing:3"}, "model: model missing:3 does not exist"),
        ({"environment": "azureml:nope@latest"}, "environment: environment 'nope' does not exist"),
        (
            {"request_settings": {"request_timeout_ms": 200000}},
            "request_settings.request_timeout_ms: expected an integer from 1 to 180000, got 200000",
        ),
        ({"liveness_probe": {"timeout": 0}}, "liveness_probe.timeout: expected an integer of at least 1, got 0"),
        ({"instance_typo": "x"}, "instance_typo: unknown key; expected one of:"),
        ({"endpoint_name": "other-ep"}, "endpoint_name: 'other-ep' does not match the endpoint 'ep1'"),
        ({"name": "b"}, "name: must be 3 to 32 characters long"),
    ],
)
def test_deployment_bad_input_is_refused_naming_the_key(api: Any, overrides: dict[str, Any], message: str) -> None:
    factories.endpoint()
    response = create_deployment(api, **overrides)
    assert response.status_code == 400, response.content
    assert error(response).startswith(message)


def test_deployment_scoring_script_must_exist_in_the_code_folder(api: Any) -> None:
    factories.endpoint()
    code = factories.upload_folder({"main.py": "x"})
    response = api.post(
        "/api/v1/online-endpoints/ep1/deployments",
        factories.deployment_spec(code=code),
        format="json",
    )
    assert response.status_code == 400
    assert error(response) == (
        "code_configuration.scoring_script: 'score.py' is not a file in the code folder (it has: main.py)"
    )


def test_deployment_missing_environment_is_refused(api: Any) -> None:
    factories.endpoint()
    spec = factories.deployment_spec()
    del spec["environment"]
    response = api.post("/api/v1/online-endpoints/ep1/deployments", spec, format="json")
    assert error(response).startswith("environment: required key is missing")


def test_deployment_over_quota_is_refused_with_the_numbers(api: Any, settings: Any) -> None:
    settings.STUDIO_CORE_QUOTA = 20
    factories.endpoint()
    response = create_deployment(api, instance_type="Standard_DS3_v2", instance_count=5)
    assert response.status_code == 400
    assert error(response) == (
        "OutOfQuota: instance_count 5 of Standard_DS3_v2 needs 24 cores (ceil(1.2 × 5) × 4 vCPUs) "
        "but only 20 of the 20-core quota are free"
    )


def test_deployment_update_set_instance_count_scales(api: Any) -> None:
    factories.deployment(factories.endpoint())
    response = api.patch("/api/v1/online-endpoints/ep1/deployments/blue", {"instance_count": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["instance_count"] == 2
    assert response.json()["provisioning_state"] == "Scaling"
    deployment = Deployment.objects.get(name="blue")
    assert deployment.generation == 2


def test_deployment_update_with_no_change_keeps_the_generation(api: Any) -> None:
    factories.deployment(factories.endpoint())
    response = api.patch("/api/v1/online-endpoints/ep1/deployments/blue", {"instance_count": 1}, format="json")
    assert response.status_code == 200
    assert Deployment.objects.get(name="blue").generation == 1


def test_deployment_with_live_traffic_cannot_be_deleted(api: Any) -> None:
    endpoint = factories.endpoint()
    factories.deployment(endpoint)
    patch_endpoint(api, traffic={"blue": 100})
    response = api.delete("/api/v1/online-endpoints/ep1/deployments/blue")
    assert response.status_code == 409
    assert error(response).startswith("deployment 'blue' takes 100 % of the live traffic of online endpoint 'ep1'")
    assert Deployment.objects.get(name="blue").state == "Creating"


def test_deployment_without_traffic_is_marked_deleting(api: Any) -> None:
    factories.deployment(factories.endpoint())
    response = api.delete("/api/v1/online-endpoints/ep1/deployments/blue")
    assert response.status_code == 204
    assert Deployment.objects.get(name="blue").state == "Deleting"
    assert api.get("/api/v1/online-endpoints/ep1").json()["traffic"] == {}


# --- keys and tokens ---


def test_keys_regenerate_one_at_a_time(api: Any) -> None:
    create_endpoint(api)
    before = api.post("/api/v1/online-endpoints/ep1/listKeys").json()
    after = api.post("/api/v1/online-endpoints/ep1/regenerateKeys", {"keyType": "Secondary"}, format="json").json()
    assert after["primaryKey"] == before["primaryKey"]
    assert after["secondaryKey"] != before["secondaryKey"]
    response = api.post("/api/v1/online-endpoints/ep1/regenerateKeys", {"keyType": "tertiary"}, format="json")
    assert error(response) == "keyType: expected primary or secondary, got 'tertiary'"


def test_aml_token_endpoint_issues_signed_expiring_tokens(api: Any) -> None:
    create_endpoint(api, auth_mode="aml_token")
    body = api.post("/api/v1/online-endpoints/ep1/token").json()
    assert set(body) == {"accessToken", "tokenType", "expiryTimeUtc", "refreshAfterTimeUtc"}
    assert body["expiryTimeUtc"] > body["refreshAfterTimeUtc"]
    endpoint = Endpoint.objects.get(name="ep1")
    assert verify_token(body["accessToken"], endpoint="ep1", secret=endpoint.token_secret)
    assert not verify_token(body["accessToken"], endpoint="ep2", secret=endpoint.token_secret)
    assert not verify_token(body["accessToken"], endpoint="ep1", secret=endpoint.token_secret, now=2**40)
    response = api.post("/api/v1/online-endpoints/ep1/listKeys")
    assert response.status_code == 400


def test_key_endpoint_refuses_get_token(api: Any) -> None:
    create_endpoint(api)
    response = api.post("/api/v1/online-endpoints/ep1/token")
    assert response.status_code == 400
    assert "uses key auth" in error(response)


# --- models, environments, uploads ---


def test_model_versions_increment_by_themselves(api: Any) -> None:
    upload = factories.upload_file(b"a")
    first = api.post("/api/v1/models", {"name": "m1", "path": f"upload:{upload.uid}"}, format="json").json()
    second = api.post("/api/v1/models", {"name": "m1", "path": f"upload:{upload.uid}"}, format="json").json()
    assert (first["version"], second["version"]) == ("1", "2")
    assert api.get("/api/v1/models/m1/versions/latest").json()["version"] == "2"
    taken = api.post("/api/v1/models", {"name": "m1", "version": 2, "path": f"upload:{upload.uid}"}, format="json")
    assert taken.status_code == 409


def test_model_path_must_be_an_upload(api: Any) -> None:
    response = api.post("/api/v1/models", {"name": "m1", "path": "./model"}, format="json")
    assert response.status_code == 400
    assert error(response).startswith("path: expected an uploaded file or folder (upload:<id>), got './model'")


def test_folder_upload_is_unpacked_and_counted(api: Any) -> None:
    archive = factories.zip_folder({"score.py": "x", "lib/util.py": "y"})
    response = api.post(
        "/api/v1/uploads", {"file": io.BytesIO(archive), "kind": "folder", "name": "src"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["file_count"] == 2


def test_zip_with_path_traversal_is_refused(api: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.py", "x")
    buffer.seek(0)
    response = api.post("/api/v1/uploads", {"file": buffer, "kind": "folder", "name": "src"}, format="multipart")
    assert response.status_code == 400
    assert error(response) == "file: the archive entry '../../evil.py' points outside its folder; refusing it"


def test_tar_with_a_symlink_is_refused(api: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    buffer.seek(0)
    response = api.post("/api/v1/uploads", {"file": buffer, "kind": "folder", "name": "src"}, format="multipart")
    assert response.status_code == 400
    assert "is not a regular file or folder" in error(response)


def test_environment_same_version_with_other_packages_is_a_conflict(api: Any) -> None:
    ok = api.post("/api/v1/environments", {"name": "env1", "version": "1", "image": "python:3.11"}, format="json")
    assert ok.status_code == 201
    again = api.post("/api/v1/environments", {"name": "env1", "version": "1", "image": "python:3.11"}, format="json")
    assert again.status_code == 201
    other = api.post("/api/v1/environments", {"name": "env1", "version": 1, "image": "python:3.12"}, format="json")
    assert other.status_code == 409


def test_environment_build_context_is_refused_with_a_reason(api: Any) -> None:
    response = api.post("/api/v1/environments", {"name": "env1", "build": {"path": "."}}, format="json")
    assert response.status_code == 400
    assert error(response).startswith("build: Docker build contexts are not supported yet")
