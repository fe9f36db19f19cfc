"""Azure ML v2 YAML (as parsed dicts): strict schemas with Azure's defaults, one per asset kind."""

from apps.endpoints.yaml.schemas import (
    DEPLOYMENT,
    ENDPOINT,
    ENVIRONMENT,
    MODEL,
    validate_deployment,
    validate_endpoint,
    validate_environment,
    validate_model,
)

__all__ = [
    "DEPLOYMENT",
    "ENDPOINT",
    "ENVIRONMENT",
    "MODEL",
    "validate_deployment",
    "validate_endpoint",
    "validate_environment",
    "validate_model",
]
