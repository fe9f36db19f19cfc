"""Specs as Azure ML v2 YAML text, and the change between two specs as a unified diff (what the pages show)."""

from __future__ import annotations

import difflib
from typing import Any

import yaml as pyyaml

ENDPOINT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"
DEPLOYMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
KUBERNETES_DEPLOYMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json"


def dump(doc: dict[str, Any], *, schema: str | None = None) -> str:
    """A spec as YAML in its own key order, `$schema` first when given (what `az ml` files look like)."""
    body = {"$schema": schema, **doc} if schema else dict(doc)
    return pyyaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)


def diff(before: str, after: str, *, name: str) -> list[str]:
    """The lines of a unified diff from one YAML text to another; empty when they are the same."""
    return list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), fromfile=f"{name} (now)", tofile=f"{name} (after)", lineterm=""
        )
    )
