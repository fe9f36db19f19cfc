"""Who may do what: the one table of actions and the role each needs.

Pages, the REST API, websockets and the CLI (which calls the API with its user's token) all ask `allowed`
through the adapters in `permissions.py`, so a rule is changed here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from apps.accounts.models import Membership, Role
from apps.core.errors import ApplicationError

__all__ = ["ACTIONS", "Role", "RoleRequired", "allowed", "check", "needs", "role_of"]

RANK = {Role.READER: 1, Role.OPERATOR: 2, Role.DEPLOYER: 3, Role.ADMIN: 4}

# Azure's Reader may call no action (listKeys, getLogs, token), only reads; so here.
ACTIONS: dict[str, Role] = {
    "read": Role.READER,
    # Operator: run what is deployed
    "traffic.set": Role.OPERATOR,
    "deployment.scale": Role.OPERATOR,
    "deployment.restart": Role.OPERATOR,
    "rollout.manage": Role.OPERATOR,
    "autoscale.set": Role.OPERATOR,
    "keys.read": Role.OPERATOR,
    "secrets.read": Role.OPERATOR,  # environment-variable values: they may hold passwords and tokens
    "token.issue": Role.OPERATOR,
    "logs.read": Role.OPERATOR,
    "endpoint.test": Role.OPERATOR,
    # Deployer: change what is deployed
    "upload.create": Role.DEPLOYER,
    "model.create": Role.DEPLOYER,
    "environment.create": Role.DEPLOYER,
    "endpoint.create": Role.DEPLOYER,
    "endpoint.update": Role.DEPLOYER,
    "deployment.create": Role.DEPLOYER,
    "deployment.update": Role.DEPLOYER,
    "deployment.delete": Role.DEPLOYER,
    "deployment.render": Role.DEPLOYER,
    # Admin: the studio itself
    "endpoint.delete": Role.ADMIN,
    "keys.regenerate": Role.ADMIN,
    "quota.set": Role.ADMIN,
    "price.set": Role.ADMIN,
    "users.manage": Role.ADMIN,
}


class RoleRequired(ApplicationError):
    """The signed-in user's role does not include the action (a 403 naming the role it needs)."""

    def __init__(self, action: str, role: Role | None) -> None:
        needed = needs(action)
        have = f"you are {role.label}" if role else "you have no role in this studio"
        super().__init__(f"{action}: needs the {needed.label} role ({have}; an Admin can change it)", status=403)
        self.action = action
        self.needed = needed


def needs(action: str) -> Role:
    """The role an action needs; an unknown action is a programming error, never silently allowed."""
    return ACTIONS[action]


def role_of(user: Any) -> Role | None:
    """The user's role: None for anonymous or disabled users and for users given none."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached: Role | None | str = getattr(user, "_studio_role", "unset")
    if cached != "unset":
        return Role(cached) if cached else None
    row = Membership.objects.filter(user=user).values_list("role", flat=True).first()
    role = Role(row) if row else None
    user._studio_role = role
    return role


def allowed(user: Any, action: str) -> bool:
    """Whether the user's role includes the action."""
    role = role_of(user)
    return role is not None and RANK[role] >= RANK[needs(action)]


def check(user: Any, action: str) -> None:
    """Raise RoleRequired unless the user's role includes the action."""
    if not allowed(user, action):
        raise RoleRequired(action, role_of(user))
