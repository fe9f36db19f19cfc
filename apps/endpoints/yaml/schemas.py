"""The four Azure ML v2 YAML kinds: online endpoint, online deployment, model, environment.

Keys, types and defaults follow Azure's JSON schemas (managedOnlineEndpoint, managedOnlineDeployment,
kubernetesOnlineDeployment, model, environment). Keys Studio cannot honour are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from apps.core.errors import ApplicationError
from apps.endpoints import requirements
from apps.endpoints.yaml.fields import (
    Field,
    bounded_map,
    bounded_text,
    fail,
    object_field,
    percent_map,
    string_map,
    validate,
)
from apps.endpoints.yaml.loader import YamlRefused, load_limited

# Bounds on free-form fields: every routing reload and page carries these rows, so their size is capped.
MAX_DESCRIPTION_CHARS = 5000
TAGS = bounded_map(entries=50, key_chars=128, value_chars=256)
ENVIRONMENT_VARIABLES = bounded_map(entries=200, key_chars=256, value_chars=32 * 1024)

NAME_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*$")
ASSET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def check_resource_name(value: str, path: str) -> str:
    """Endpoint and deployment names: 3-32 characters, a letter first, letters, digits, single dashes."""
    if not 3 <= len(value) <= 32:
        raise fail(path, f"must be 3 to 32 characters long, got {value!r} ({len(value)})")
    if not NAME_RE.match(value):
        raise fail(
            path,
            f"must start with a letter and contain only letters, digits and single dashes "
            f"(not at the end), got {value!r}",
        )
    return value


def check_asset_name(value: str, path: str) -> str:
    """Model and environment names: letters, digits, dots, dashes and underscores."""
    if not ASSET_NAME_RE.match(value):
        raise fail(
            path, f"must be 1 to 255 letters, digits, '.', '-' or '_', starting with a letter or digit, got {value!r}"
        )
    return value


def check_version(value: Any, path: str) -> str:
    text = str(value).strip()
    if not text or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", text):
        raise fail(path, f"expected a version such as 1 or 2, got {value!r}")
    return text


def _probe(*, liveness: bool) -> Field:
    children = {
        "initial_delay": Field("int", default=10, minimum=1),
        "period": Field("int", default=10, minimum=1),
        "timeout": Field("int", default=2, minimum=1),
        "success_threshold": Field(
            "int",
            default=1,
            minimum=1,
            maximum=1 if liveness else None,
            help="1 (fixed for liveness probes)" if liveness else "",
        ),
        "failure_threshold": Field("int", default=30, minimum=1),
        # API 2024-10-01 spellings are not accepted in YAML by Azure either.
    }
    return object_field(children)


def _auth_mode(value: str, path: str) -> str:
    if value == "aad_token":
        raise fail(path, "aad_token needs Microsoft Entra ID, which Studio does not have; use key or aml_token")
    return value


TARGET_UTILIZATION_DEFAULTS = {
    "type": "target_utilization",
    "min_instances": 1,
    "max_instances": 1,
    "target_utilization_percentage": 70,
    "polling_interval": 1,
}

ROUTE = {"port": Field("int", required=True, minimum=1, maximum=65535), "path": Field("str", required=True)}

ENDPOINT: dict[str, Field] = {
    "$schema": Field("str"),
    "name": Field("str", required=True, check=check_resource_name),
    "description": Field("str", default="", check=bounded_text(MAX_DESCRIPTION_CHARS)),
    "tags": Field("map", default=dict, check=TAGS),
    "auth_mode": Field("str", default="key", choices=("key", "aml_token", "aad_token"), check=_auth_mode),
    "compute": Field("str", default=""),
    "traffic": Field("map", default=dict, check=percent_map),
    "mirror_traffic": Field("map", default=dict, check=percent_map),
    "public_network_access": Field("str", default="enabled", choices=("enabled", "disabled")),
    # Studio's form of `az ml online-endpoint create --local`: no key, one deployment that takes every request.
    "local": Field("bool", default=False),
    "identity": Field("object", unsupported="managed identities are not supported by Studio; remove the key"),
    "kind": Field("str", unsupported="kind is not an online endpoint key; remove it"),
}

INLINE_MODEL: dict[str, Field] = {
    "$schema": Field("str"),
    "name": Field("str", check=check_asset_name),
    "version": Field("str", alternatives=("int",), check=check_version),
    "description": Field("str", default="", check=bounded_text(MAX_DESCRIPTION_CHARS)),
    "tags": Field("map", default=dict, check=TAGS),
    "path": Field("str", required=True),
    "type": Field("str", default="custom_model", choices=("custom_model", "mlflow_model", "triton_model")),
}

MODEL: dict[str, Field] = {**INLINE_MODEL, "name": Field("str", required=True, check=check_asset_name)}


def _pip_requirements(value: Any, path: str) -> str:
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise fail(path, "expected a list of requirement strings")
        value = "\n".join(value)
    text = str(value)
    try:
        requirements.check(requirements.numbered_lines(text), path)
    except ValueError as exc:
        raise ApplicationError(str(exc), field=path) from None
    return text


def _conda_file(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, str):
        if value.startswith("upload:") or "\n" not in value:
            raise fail(
                path, f"expected the conda file's contents, got a path {value[:200]!r} (the CLI sends the file inline)"
            )
        try:
            value = load_limited(value)
        except YamlRefused as exc:
            raise fail(path, str(exc)) from None
    if not isinstance(value, Mapping):
        raise fail(path, "expected a conda environment with a dependencies list")
    dependencies = value.get("dependencies", [])
    if not isinstance(dependencies, list):
        raise fail(f"{path}.dependencies", "expected a list")
    for index, dependency in enumerate(dependencies):
        if isinstance(dependency, Mapping):
            pip = dependency.get("pip") or []
            if not isinstance(pip, list):
                raise fail(f"{path}.dependencies[{index}].pip", "expected a list of requirement strings")
            items = [(number, str(item).strip()) for number, item in enumerate(pip, start=1) if str(item).strip()]
            try:
                requirements.check(items, f"{path}.dependencies[{index}].pip", unit="item")
            except ValueError as exc:
                raise ApplicationError(str(exc), field=path) from None
    return dict(value)


INLINE_ENVIRONMENT: dict[str, Field] = {
    "$schema": Field("str"),
    "name": Field("str", check=check_asset_name),
    "version": Field("str", alternatives=("int",), check=check_version),
    "description": Field("str", default="", check=bounded_text(MAX_DESCRIPTION_CHARS)),
    "tags": Field("map", default=dict, check=TAGS),
    "image": Field("str", default=""),
    "conda_file": Field("object", alternatives=("str",), check=_conda_file),
    "pip_requirements": Field(
        "str",
        alternatives=("list",),
        default="",
        check=_pip_requirements,
        help="requirements.txt text or a list of requirements (a Studio extension)",
    ),
    "os_type": Field("str", default="linux", choices=("linux",)),
    "inference_config": Field(
        "object",
        children={
            "liveness_route": Field("object", children=ROUTE),
            "readiness_route": Field("object", children=ROUTE),
            "scoring_route": Field("object", children=ROUTE),
        },
    ),
    "build": Field(
        "object",
        unsupported="Docker build contexts are not supported yet; give image plus conda_file or pip_requirements",
    ),
}

ENVIRONMENT: dict[str, Field] = {**INLINE_ENVIRONMENT, "name": Field("str", required=True, check=check_asset_name)}

DEPLOYMENT: dict[str, Field] = {
    "$schema": Field("str"),
    "name": Field("str", required=True, check=check_resource_name),
    "endpoint_name": Field("str", check=check_resource_name),
    "description": Field("str", default="", check=bounded_text(MAX_DESCRIPTION_CHARS)),
    "tags": Field("map", default=dict, check=TAGS),
    "type": Field("str", default="managed", choices=("managed", "kubernetes")),
    "model": Field(
        "str",
        alternatives=("object",),
        help="azureml:<name>:<version>, azureml:<name>@latest or an inline model with a path",
    ),
    "model_mount_path": Field("str"),
    "code_configuration": Field(
        "object", children={"code": Field("str", required=True), "scoring_script": Field("str", required=True)}
    ),
    "environment": Field(
        "str",
        alternatives=("object",),
        required=True,
        help="azureml:<name>:<version>, azureml:<name>@latest or an inline environment",
    ),
    "environment_variables": Field("map", default=dict, check=ENVIRONMENT_VARIABLES),
    "instance_type": Field("str"),
    "instance_count": Field("int", minimum=1, maximum=50),
    "app_insights_enabled": Field("bool", default=False),
    "scale_settings": object_field(
        {
            "type": Field("str", default="default", choices=("default", "target_utilization")),
            "min_instances": Field("int", minimum=1),
            "max_instances": Field("int", minimum=1),
            "target_utilization_percentage": Field("int", minimum=1, maximum=100),
            "polling_interval": Field("int", minimum=1),
        }
    ),
    "request_settings": object_field(
        {
            "request_timeout_ms": Field("int", default=5000, minimum=1, maximum=180000),
            "max_concurrent_requests_per_instance": Field("int", default=1, minimum=1),
            "max_queue_wait_ms": Field("int", default=500, minimum=0),
        }
    ),
    "liveness_probe": _probe(liveness=True),
    "readiness_probe": _probe(liveness=False),
    "resources": Field(
        "object",
        children={
            "requests": Field("map", check=string_map),
            "limits": Field("map", check=string_map),
        },
    ),
    "data_collector": Field("object", unsupported="data collection is not supported yet; remove data_collector"),
    "egress_public_network_access": Field("str", default="enabled", choices=("enabled", "disabled")),
    "private_network_connection": Field("bool", default=False),
}


def validate_endpoint(doc: Any) -> dict[str, Any]:
    """An online endpoint document, checked, with defaults."""
    return validate(doc, ENDPOINT)


def validate_model(doc: Any) -> dict[str, Any]:
    """A model document, checked, with defaults."""
    return validate(doc, MODEL)


def validate_environment(doc: Any, *, inline: bool = False) -> dict[str, Any]:
    """An environment document (named, or inline in a deployment), checked, with defaults."""
    return validate(doc, INLINE_ENVIRONMENT if inline else ENVIRONMENT)


def validate_deployment(doc: Any) -> dict[str, Any]:
    """An online deployment document, checked, with defaults and the cross-key rules."""
    spec = validate(doc, DEPLOYMENT)
    scale = spec["scale_settings"]
    if spec["type"] == "kubernetes" and "scale_settings" not in doc:
        scale = {"type": "target_utilization"}  # Azure's default for Kubernetes deployments
    if scale["type"] == "target_utilization":
        scale = {**TARGET_UTILIZATION_DEFAULTS, **scale}
        if scale["min_instances"] > scale["max_instances"]:
            raise fail(
                "scale_settings.min_instances",
                f"must not exceed max_instances ({scale['max_instances']}), got {scale['min_instances']}",
            )
        if spec.get("instance_count") is None:
            spec["instance_count"] = scale["min_instances"]
    else:
        scale = {"type": "default"}
        if spec.get("instance_count") is None:
            raise fail("instance_count", "required key is missing (expected an integer from 1 to 50)")
    spec["scale_settings"] = scale
    if spec["type"] == "managed" and not spec.get("instance_type"):
        raise fail("instance_type", "required key is missing (expected a VM size such as Standard_DS3_v2)")
    if spec.get("model") is None and spec.get("code_configuration") is None:
        raise fail("model", "a deployment needs a model, a code_configuration, or both")
    return spec
