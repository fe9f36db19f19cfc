"""Users of every role, each with a personal API token, and an endpoint with one deployment to act on."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from apps.accounts import services
from tests import factories

ROLES = ("reader", "operator", "deployer", "admin")
ROLES_AND_NONE = (None, *ROLES)
# A user with no role is refused at the door: whatever the action, they are told they need Reader.
LABEL = {"reader": "Reader", "operator": "Operator", "deployer": "Deployer", "admin": "Admin", None: "none"}
RANK = {None: 0, "reader": 1, "operator": 2, "deployer": 3, "admin": 4}


@pytest.fixture
def people(db: None) -> dict[str | None, Any]:
    """A user per role, and one (`None`) the studio gave no role."""
    found: dict[str | None, Any] = {role: factories.user(f"{role}-user", role=role) for role in ROLES}
    found[None] = get_user_model().objects.create_user(username="nobody", password="correct-horse-battery")
    return found


@pytest.fixture
def tokens(people: dict[str | None, Any]) -> dict[str | None, str]:
    return {role: services.token_create(user=user, name="tests")[1] for role, user in people.items()}


@pytest.fixture
def served(db: None) -> Any:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    return endpoint
