"""A Reader "sees everything but keys and secrets": environment-variable values (they may hold passwords) are hidden
from roles below Operator in the API, the Azure-shaped API, the spec page, its YAML download and the Edit page,
with the names kept and a field saying why; an Operator sees them. No page or API a Reader may open shows a
value, an endpoint key, the studio's secret key or an instance's secret."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from apps.core.errors import ApplicationError
from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint, Instance
from gateway.wire import instance_secret

SECRET = "hunter2-db-password"
VARIABLES = {"DB_PASSWORD": SECRET, "MODE": "fast"}
HIDDEN = "values hidden: secrets.read needs the Operator role (you are Reader)"
ARM_WS = "/azure/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"


@pytest.fixture
def blue(served: Endpoint) -> Deployment:
    """ep1's deployment blue, holding a secret in its variables, changed once (so the audit trail has it)."""
    deployment = Deployment.objects.get(endpoint=served, name="blue")
    return services.deployment_update(deployment=deployment, changes={"environment_variables": VARIABLES})


def _api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_api_hides_variable_values_from_a_reader_and_shows_them_to_an_operator(
    blue: Deployment, tokens: dict[str | None, str]
) -> None:
    reader = _api(tokens["reader"])
    shown = reader.get("/api/v1/online-endpoints/ep1/deployments/blue").json()
    assert shown["environment_variables"] == {"DB_PASSWORD": None, "MODE": None}
    assert shown["environment_variables_hidden"] == HIDDEN
    listed = reader.get("/api/v1/online-endpoints/ep1/deployments").json()["results"][0]
    assert listed["environment_variables"] == {"DB_PASSWORD": None, "MODE": None}
    assert listed["environment_variables_hidden"] == HIDDEN

    operator = _api(tokens["operator"])
    shown = operator.get("/api/v1/online-endpoints/ep1/deployments/blue").json()
    assert shown["environment_variables"] == VARIABLES
    assert "environment_variables_hidden" not in shown
    assert operator.get("/api/v1/online-endpoints/ep1/deployments").json()["results"][0]["environment_variables"] == (
        VARIABLES
    )


def test_the_azure_shaped_api_hides_them_too(blue: Deployment, tokens: dict[str | None, str]) -> None:
    def properties(role: str, path: str) -> dict[str, Any]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens[role]}")
        body = client.get(f"{ARM_WS}/onlineEndpoints/ep1/{path}").json()
        return dict(body["value"][0]["properties"] if "value" in body else body["properties"])

    for path in ("deployments/blue", "deployments"):
        hidden = properties("reader", path)
        assert hidden["environmentVariables"] == {"DB_PASSWORD": None, "MODE": None}
        assert hidden["properties"] == {"environmentVariablesHidden": HIDDEN}
        shown = properties("operator", path)
        assert shown["environmentVariables"] == VARIABLES
        assert shown["properties"] == {}


def test_the_spec_page_and_its_download_show_a_reader_names_only(
    blue: Deployment, people: dict[str | None, Any]
) -> None:
    reader = _page(people["reader"])
    page = reader.get("/endpoints/ep1/deployments/blue/spec/").content.decode()
    assert "DB_PASSWORD: null" in page and SECRET not in page and "MODE: null" in page
    assert 'id="deployment-spec-hidden"' in page
    assert f"Environment variable {HIDDEN}: their names are shown, their values are not." in page
    download = reader.get("/endpoints/ep1/deployments/blue/deployment.yml").content.decode()
    assert download.startswith(f"# environment variable {HIDDEN}\n")
    doc = yaml.safe_load(download)
    assert doc["environment_variables"] == {"DB_PASSWORD": None, "MODE": None}
    # Such a file cannot blank the values if someone applies it: the key that says they are hidden is refused.
    doc.pop("$schema")
    with pytest.raises(ApplicationError, match="environment_variables_hidden"):
        services.deployment_update(deployment=blue, changes=doc)
    assert Deployment.objects.get(pk=blue.pk).environment_variables == VARIABLES

    operator = _page(people["operator"])
    page = operator.get("/endpoints/ep1/deployments/blue/spec/").content.decode()
    assert f"DB_PASSWORD: {SECRET}" in page and 'id="deployment-spec-hidden"' not in page
    doc = yaml.safe_load(operator.get("/endpoints/ep1/deployments/blue/deployment.yml").content)
    assert doc["environment_variables"] == VARIABLES and "environment_variables_hidden" not in doc


def test_the_edit_page_shows_a_reader_masked_names_in_a_disabled_field(
    blue: Deployment, people: dict[str | None, Any]
) -> None:
    def variables_field(role: str) -> tuple[str, set[str]]:
        """The Edit page as the role sees it, and the variables textarea's lines (in any order: PostgreSQL's)."""
        page = _page(people[role]).get("/endpoints/ep1/deployments/blue/edit/").content.decode()
        field = re.search(r'<textarea name="environment_variables"[^>]*>([^<]*)</textarea>', page)
        assert field is not None, page
        return page, set(field.group(1).split())

    page, lines = variables_field("reader")
    assert SECRET not in page
    assert lines == {"DB_PASSWORD=••••", "MODE=••••"}
    assert re.search(r'<textarea name="environment_variables"[^>]* disabled', page)
    assert "Values hidden: secrets.read needs the Operator role (you are Reader)." in page

    page, lines = variables_field("operator")
    assert lines == {f"DB_PASSWORD={SECRET}", "MODE=fast"}
    assert "Values hidden" not in page


READER_PAGES = [
    "/endpoints/",
    "/endpoints/ep1/",
    "/endpoints/ep1/deployments/blue/",
    "/endpoints/ep1/deployments/blue/spec/",
    "/endpoints/ep1/deployments/blue/deployment.yml",
    "/endpoints/ep1/deployments/blue/edit/",
    "/endpoints/ep1/deployments/blue/autoscale/",
    "/endpoints/ep1/endpoint.yml",
    "/endpoints/ep1/traffic/",
    "/endpoints/ep1/test/",
    "/endpoints/ep1/consume/",
    "/endpoints/ep1/events/",
    "/endpoints/ep1/monitoring/",
    "/endpoints/ep1/costs/",
    "/endpoints/ep1/audit/",
    "/endpoints/ep1/rollout/",
    "/audit/",
    "/audit/export.jsonl",
    "/models/",
    "/environments/",
    "/monitoring/",
    "/costs/",
    "/account/tokens/",
    "/api/v1/online-endpoints",
    "/api/v1/online-endpoints/ep1",
    "/api/v1/online-endpoints/ep1/deployments",
    "/api/v1/online-endpoints/ep1/deployments/blue",
    "/api/v1/online-endpoints/ep1/traffic-changes",
    "/api/v1/audit",
    "/api/v1/audit/export",
    "/api/v1/auth/me",
    f"{ARM_WS}/onlineEndpoints",
    f"{ARM_WS}/onlineEndpoints/ep1",
    f"{ARM_WS}/onlineEndpoints/ep1/deployments",
    f"{ARM_WS}/onlineEndpoints/ep1/deployments/blue",
]


def test_no_page_or_api_a_reader_opens_shows_a_secret_a_key_or_an_instance_secret(
    blue: Deployment, people: dict[str | None, Any], tokens: dict[str | None, str]
) -> None:
    Instance.objects.create(deployment=blue, name="blue-0", address="http://127.0.0.1:5999", ready=True, state="Ready")
    endpoint = Endpoint.objects.get(name="ep1")
    secrets = {
        "a variable's value": SECRET,
        "the primary key": endpoint.primary_key,
        "the secondary key": endpoint.secondary_key,
        "the studio's secret key": settings.SECRET_KEY,
        "the instance's secret": instance_secret(
            settings.SECRET_KEY, deployment_uid=str(blue.uid), instance="blue-0", port=5999
        ),
    }
    browser = _page(people["reader"])
    api = _api(tokens["reader"])
    arm = APIClient()
    arm.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['reader']}")
    for path in READER_PAGES:
        client = arm if path.startswith("/azure/") else api if path.startswith("/api/") else browser
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode()
        for what, value in secrets.items():
            assert value not in text, f"{path} shows {what} to a Reader"
