"""A control for an action the user's role lacks is shown disabled with the role it needs (never hidden): on the
endpoint list, an endpoint's tabs, deployment cards, the spec and Edit pages, models, environments and Users.
Each role sees each control enabled or disabled as `roles.ACTIONS` says; the server's refusal is test_roles.py's."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from apps.accounts.roles import needs
from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState
from tests import factories
from tests.accounts.conftest import LABEL, RANK, ROLES

CONTROLS = "a", "button", "select", "input", "fieldset"  # a disabled fieldset disables every field in it

# (page, the control: its text or #id, the action it performs)
PAGE_CONTROLS = [
    ("/endpoints/", "Create endpoint", "endpoint.create"),
    ("/endpoints/", "Create from YAML", "endpoint.create"),
    ("/endpoints/ep1/", "Add deployment", "deployment.create"),
    ("/endpoints/ep1/", "Create deployment from YAML", "deployment.create"),
    ("/endpoints/ep1/", "Delete endpoint ep1", "endpoint.delete"),
    ("/endpoints/ep1/", "Save", "endpoint.update"),
    ("/endpoints/ep1/", "#endpoint-edit-fields", "endpoint.update"),
    ("/endpoints/ep1/", "Logs", "logs.read"),
    ("/endpoints/ep1/", "Edit blue", "deployment.update"),
    ("/endpoints/ep1/", "#type-{blue}", "deployment.update"),
    ("/endpoints/ep1/", "#scale-{blue}", "deployment.scale"),
    ("/endpoints/ep1/", "Update size of blue", "deployment.scale"),
    ("/endpoints/ep1/", "Delete blue", "deployment.delete"),
    ("/endpoints/ep1/", "View logs", "logs.read"),
    ("/endpoints/ep1/traffic/", "#traffic-apply", "traffic.set"),
    ("/endpoints/ep1/traffic/", "#traffic-live-fields", "traffic.set"),
    ("/endpoints/ep1/traffic/", "#traffic-mirror-fields", "traffic.set"),
    ("/endpoints/ep1/traffic/", "#traffic-confirm-apply", "traffic.set"),
    ("/endpoints/ep1/traffic/", "Revert", "traffic.set"),
    ("/endpoints/ep1/traffic/", "#rollout-start", "rollout.manage"),
    ("/endpoints/ep1/deployments/blue/spec/", "Edit", "deployment.update"),
    ("/endpoints/ep1/deployments/blue/edit/", "Review changes", "deployment.update"),
    ("/endpoints/ep1/deployments/blue/edit/", "#edit-fields-1", "deployment.update"),
    ("/endpoints/ep1/deployments/blue/autoscale/", "Save autoscale", "autoscale.set"),
    ("/endpoints/ep1/consume/", "#show-keys", "keys.read"),
    ("/endpoints/ep1/test/", "#test-send", "endpoint.test"),
    ("/endpoints/ep2/consume/", "#get-token", "token.issue"),
    ("/models/", "Register model", "model.create"),
    ("/models/sklearn-model/", "Register a new version", "model.create"),
    ("/environments/", "Create environment", "environment.create"),
    ("/users/", "Create invitation link", "users.manage"),
    ("/users/", "Set role", "users.manage"),
    ("/users/", "Disable", "users.manage"),
]


class Controls(HTMLParser):
    """The page's links, buttons, selects and inputs: their attributes and text (hidden spans included)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self.open: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in CONTROLS:
            element = {"tag": tag, "attrs": dict(attrs), "text": ""}
            self.found.append(element)
            if tag in ("a", "button"):
                self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("a", "button") and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element["text"] += data


def _controls(html: str, wanted: str) -> list[dict[str, Any]]:
    parser = Controls()
    parser.feed(html)
    if wanted.startswith("#"):
        return [e for e in parser.found if e["attrs"].get("id") == wanted[1:]]
    return [e for e in parser.found if " ".join(e["text"].split()) == wanted]


@pytest.fixture
def studio(served: Endpoint) -> dict[str, str]:
    """ep1 with blue (succeeded, all live traffic, one change to revert) and green (failed); ep2 takes tokens."""
    Deployment.objects.filter(name="blue").update(state=ProvisioningState.SUCCEEDED)
    services.traffic_set(endpoint=served, traffic={"blue": 100})
    green = factories.deployment(Endpoint.objects.get(name="ep1"), "green")
    Deployment.objects.filter(pk=green.pk).update(state=ProvisioningState.FAILED, reason="UserScriptInitFailed")
    factories.endpoint("ep2", auth_mode="aml_token")
    return {"blue": str(Deployment.objects.get(name="blue").uid)}


def test_each_role_sees_the_controls_it_may_use_enabled_and_the_others_disabled_with_the_role_they_need(
    people: dict[str | None, Any], studio: dict[str, str]
) -> None:
    for role in ROLES:
        client = Client()
        client.force_login(people[role])
        pages: dict[str, str] = {}
        for path, wanted, action in PAGE_CONTROLS:
            if path not in pages:
                response = client.get(path)
                assert response.status_code == 200, (role, path, response.status_code)
                pages[path] = response.content.decode()
            found = _controls(pages[path], wanted.format(**studio))
            assert found, f"{path} has no control {wanted!r} for {role}"
            needed = needs(action)
            for element in found:
                attrs = element["attrs"]
                refused = "disabled" in attrs or attrs.get("aria-disabled") == "true"
                if RANK[role] >= RANK[needed.value]:
                    assert not refused and "data-needs-role" not in attrs, (role, path, wanted, attrs)
                    assert element["tag"] != "a" or attrs.get("href"), (role, path, wanted, attrs)
                else:
                    assert refused, (role, path, wanted, attrs)
                    assert attrs["title"] == f"needs {needed.label} (you are {LABEL[role]})", (role, path, attrs)
                    assert attrs["data-needs-role"] == needed.label
                    # a refused link goes nowhere, yet can be focused so its title is read out
                    assert element["tag"] != "a" or (
                        "href" not in attrs and attrs.get("tabindex") == "0" and attrs.get("role") == "link"
                    )


def test_the_shown_keys_offer_regenerate_to_an_admin_only(
    people: dict[str | None, Any], studio: dict[str, str]
) -> None:
    for role in ("operator", "admin"):
        client = Client()
        client.force_login(people[role])
        panel = client.post("/endpoints/ep1/consume/keys/").content.decode()
        for button in ("#regenerate-primary", "#regenerate-secondary"):
            (element,) = _controls(panel, button)
            if role == "admin":
                assert "disabled" not in element["attrs"]
            else:
                assert element["attrs"]["title"] == "needs Admin (you are Operator)"


def test_every_role_may_look_at_the_users_page_and_the_nav_links_it(
    people: dict[str | None, Any], studio: dict[str, str]
) -> None:
    client = Client()
    client.force_login(people["reader"])
    page = client.get("/endpoints/").content.decode()
    assert '<span id="signed-in-role">(Reader)</span>' in page
    assert 'href="/users/"' in page
    users = client.get("/users/").content.decode()
    assert 'id="user-admin-user"' in users and "Operator" in users


def test_only_an_admin_sees_the_open_invitations_whose_notes_may_name_people(
    people: dict[str | None, Any], studio: dict[str, str]
) -> None:
    admin = Client()
    admin.force_login(people["admin"])
    admin.post("/users/", {"role": "reader", "note": "dana@example.com"})
    assert "dana@example.com" in admin.get("/users/").content.decode()
    for role in ("reader", "operator", "deployer"):
        client = Client()
        client.force_login(people[role])
        page = client.get("/users/").content.decode()
        assert 'id="user-admin-user"' in page and "dana@example.com" not in page, role
