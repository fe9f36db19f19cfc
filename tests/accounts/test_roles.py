"""Who may do what: for each kind of action (page, API, websocket) and each role, allowed or refused with the
role it needs. One test per action runs every role against it, each attempt rolled back."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from tests.accounts.conftest import LABEL, RANK, ROLES_AND_NONE

# (method, path, body, the role it needs)
API_ACTIONS = [
    ("get", "/api/v1/online-endpoints/ep1", None, "reader"),
    ("get", "/api/v1/audit", None, "reader"),
    ("patch", "/api/v1/online-endpoints/ep1", {"traffic": {"blue": 100}}, "operator"),
    ("patch", "/api/v1/online-endpoints/ep1/deployments/blue", {"instance_count": 2}, "operator"),
    ("post", "/api/v1/online-endpoints/ep1/listKeys", None, "operator"),
    ("get", "/api/v1/online-endpoints/ep1/deployments/blue/logs", None, "operator"),
    ("post", "/api/v1/online-endpoints", {"name": "ep2"}, "deployer"),
    ("patch", "/api/v1/online-endpoints/ep1", {"description": "new"}, "deployer"),
    ("post", "/api/v1/models", {"name": "m"}, "deployer"),
    ("patch", "/api/v1/online-endpoints/ep1/deployments/blue", {"instance_type": "Standard_DS3_v2"}, "deployer"),
    ("post", "/api/v1/online-endpoints/ep1/regenerateKeys", {"keyType": "Primary"}, "admin"),
    ("patch", "/api/v1/instance-types/Standard_DS2_v2", {"price_per_hour": "0.5"}, "admin"),
    ("delete", "/api/v1/online-endpoints/ep1", None, "admin"),
]

PAGE_ACTIONS = [
    ("get", "/endpoints/ep1/", None, "reader"),
    ("get", "/audit/", None, "reader"),
    ("post", "/endpoints/ep1/traffic/", {"traffic_blue": "100"}, "operator"),
    ("post", "/endpoints/ep1/consume/keys/", {}, "operator"),
    ("get", "/endpoints/ep1/logs/", None, "operator"),
    ("get", "/endpoints/new/", None, "deployer"),
    ("get", "/endpoints/ep1/deployments/new/", None, "deployer"),
    # the keys panel needs Operator, its Regenerate button Admin: each role is told the first it lacks
    ("post", "/endpoints/ep1/consume/keys/", {"regenerate": "primary"}, ("operator", "admin")),
    ("post", "/endpoints/ep1/delete/", {}, "admin"),
    ("post", "/users/", {"role": "reader", "note": "new colleague"}, "admin"),
    ("post", "/users/operator-user/", {"role": "deployer"}, "admin"),
]


def _attempt(send: Any, *args: Any, **kwargs: Any) -> Any:
    """Make one request and undo whatever it changed, so every role meets the same state."""
    with transaction.atomic():
        response = send(*args, **kwargs)
        transaction.set_rollback(True)
    return response


@pytest.mark.parametrize(("method", "path", "body", "needed"), API_ACTIONS, ids=[f"{a[0]} {a[1]}" for a in API_ACTIONS])
def test_api_allows_each_role_its_actions_and_names_the_role_it_refuses(
    method: str, path: str, body: Any, needed: str, tokens: dict[str | None, str], served: Any
) -> None:
    for role in ROLES_AND_NONE:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[role]}")
        response = _attempt(getattr(client, method), path, body, format="json")
        if RANK[role] >= RANK[needed]:
            assert response.status_code not in (401, 403), (role, response.status_code, response.content)
        else:
            assert response.status_code == 403, (role, response.status_code, response.content)
            error = response.json()["error"]
            assert error["code"] in ("RoleRequired", "PermissionDenied"), error
            assert f"needs the {LABEL[needed] if role else 'Reader'} role" in error["message"], (role, error)


@pytest.mark.parametrize(
    ("method", "path", "body", "needed"), PAGE_ACTIONS, ids=[f"{a[0]} {a[1]} {a[2]}" for a in PAGE_ACTIONS]
)
def test_pages_allow_each_role_its_actions_and_show_the_role_they_refuse(
    method: str, path: str, body: Any, needed: str | tuple[str, ...], people: dict[str | None, Any], served: Any
) -> None:
    gates = needed if isinstance(needed, tuple) else (needed,)
    for role in ROLES_AND_NONE:
        client = Client()
        client.force_login(people[role])
        response = _attempt(getattr(client, method), path, body)
        text = response.content.decode()
        if RANK[role] >= RANK[gates[-1]]:
            assert response.status_code != 403, (role, text[:300])
            assert "needs the" not in text, (role, text[:300])
        else:
            lacking = next(gate for gate in gates if RANK[role] < RANK[gate]) if role else "reader"
            # a whole page refused is the 403 page; a control inside an allowed page says so in place
            assert response.status_code == 403 or lacking != gates[0], (role, response.status_code)
            assert f"needs the {LABEL[lacking]} role" in text, (role, text)
