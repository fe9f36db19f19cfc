"""GET /swagger.json: the user's swagger file, else one generated from inference-schema, else the minimal one."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.scoring import schema_util_module

logger = logging.getLogger("azmlinfsrv.swagger")

# version -> the aliases a client may ask for, as azmlinfsrv accepts them
VERSIONS: dict[str, tuple[str, ...]] = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
_ALL_ALIASES = {alias for aliases in VERSIONS.values() for alias in aliases}
# the user files azmlinfsrv looks for in the app root, first match wins
USER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}
UNDECORATED_SCHEMA: dict[str, Any] = {"type": "object", "example": {}}


class SwaggerError(Exception):
    """No document for the version asked; the message is azmlinfsrv's."""


class Swagger:
    """The swagger documents of one scoring script, built once at start-up."""

    def __init__(
        self,
        app_root: Path,
        run: Callable[..., Any] | None,
        *,
        service_name: str = "ML service",
        service_version: str = "1.0",
        path_prefix: str = "",
    ) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        prefix = f"/{path_prefix.strip('/')}" if path_prefix else ""
        for version in VERSIONS:
            document = _read_user_file(app_root, version)
            if document is None and run is not None:
                document = _generate(version, run, service_name, service_version, prefix)
            if document is not None:
                self.documents[version] = document
        self.supported = sorted(self.documents)
        skipped = sorted(set(VERSIONS) - set(self.documents))
        if self.supported and skipped:
            logger.info(
                f"Swaggers are prepared for versions [{', '.join(self.supported)}] "
                f"and skipped for versions [{', '.join(skipped)}]."
            )
        elif self.supported:
            logger.info(f"Swaggers are prepared for the following versions: [{', '.join(self.supported)}].")
        else:
            logger.info("No swagger is prepared.")
        # answers are serialised once: the document does not change while the server runs
        self._bodies = {alias: json.dumps(doc).encode() for v, doc in self.documents.items() for alias in VERSIONS[v]}

    def body(self, version: str | None) -> bytes:
        """The JSON bytes for `?version=` (default 2), or SwaggerError with Azure's wording."""
        version = "2" if version is None else version
        supported = ", ".join(self.supported)
        if version not in _ALL_ALIASES:
            raise SwaggerError(f"Swagger version [{version}] is not valid. Supported versions: [{supported}].")
        body = self._bodies.get(version)
        if body is None:
            raise SwaggerError(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
        return body


def _read_user_file(app_root: Path, version: str) -> dict[str, Any] | None:
    for name in USER_FILES[version]:
        path = app_root / name
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                document = json.load(f)
            logger.info(f"Loaded user's swagger file for version [{version}] from {path}")
            return document
    return None


def _generate(
    version: str, run: Callable[..., Any], service_name: str, service_version: str, prefix: str
) -> dict[str, Any] | None:
    util = schema_util_module()
    if util is not None:
        supported = util.get_supported_versions(run)
        if all(alias not in supported for alias in VERSIONS[version]):
            return None
    if util is not None and util.is_schema_decorated(run):
        input_schema, output_schema = util.get_input_schema(run), util.get_output_schema(run)
    else:
        input_schema = output_schema = UNDECORATED_SCHEMA
    document = _template_v2() if version == "2" else _template_v3()
    document["info"]["title"] = service_name
    document["info"]["description"] = f"API specification for the Azure Machine Learning service {service_name}"
    document["info"]["version"] = service_version
    document["paths"] = {f"{prefix}{path}": spec for path, spec in document["paths"].items()}
    if version == "2":
        document["definitions"]["ServiceInput"] = copy.deepcopy(input_schema)
        document["definitions"]["ServiceOutput"] = copy.deepcopy(output_schema)
    else:
        document["components"]["schemas"]["ServiceInput"] = copy.deepcopy(input_schema)
        document["components"]["schemas"]["ServiceOutput"] = copy.deepcopy(output_schema)
        if version == "3.1":
            document["openapi"] = "3.1.0"
    return document


_HEALTH_DESCRIPTION = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTH_OK = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE_DESCRIPTION = "Run web service's model and get the prediction output"
_SCORE_INPUT = "The input payload for executing the real-time machine learning service."
_SCORE_OK = "The service processed the input correctly and provided a result prediction, if applicable."
_FAILED = "The service failed to execute due to an error."
_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header", "description": "For example: Bearer abc123"}
_ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}


def _template_v2() -> dict[str, Any]:
    """azmlinfsrv's swagger2_template.json."""
    error = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {"title": "", "description": "", "version": ""},
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "responses": {
                        "200": {
                            "description": _HEALTH_OK,
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": dict(error),
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _SCORE_INPUT,
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {"description": _SCORE_OK, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": dict(error),
                    },
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {"name": "version", "in": "query", "required": False, "type": "integer", "enum": [2, 3]}
                    ],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": dict(error),
                    },
                }
            },
        },
        "definitions": {"ServiceInput": {}, "ServiceOutput": {}, "ErrorResponse": copy.deepcopy(_ERROR)},
    }


def _template_v3() -> dict[str, Any]:
    """azmlinfsrv's swagger3_template.json."""
    error = {
        "description": _FAILED,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "", "description": "", "version": ""},
        "security": [{"Bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "responses": {
                        "200": {
                            "description": _HEALTH_OK,
                            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
                        },
                        "default": copy.deepcopy(error),
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": _SCORE_INPUT,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInput"}}},
                    },
                    "responses": {
                        "200": {
                            "description": _SCORE_OK,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                        },
                        "default": copy.deepcopy(error),
                    },
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "enum": [2, 3]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "default": copy.deepcopy(error),
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": {}, "ServiceOutput": {}, "ErrorResponse": copy.deepcopy(_ERROR)},
            "securitySchemes": {"Bearer": dict(_BEARER)},
        },
    }
