"""The Azure Resource Manager routes azure-ai-ml calls: thin views over apps.endpoints and apps.arm.services.

Authenticated with the user's API token sent as `Authorization: Bearer <token>` (the SDK's token credential):
the studio's configured token authentication, with the keyword Azure uses. Errors come back in Azure's shape.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts.permissions import enforce
from apps.arm import operations, services, shapes
from apps.arm.models import CodeVersion
from apps.core.errors import ApplicationError
from apps.endpoints import selectors
from apps.endpoints import services as endpoint_services
from apps.endpoints.backends.base import Container
from apps.endpoints.logs import deployment_logs as read_logs
from apps.endpoints.models import Deployment, Endpoint, Environment, Model

STORAGE_ACCOUNT = "studio"
STORAGE_SUFFIX = "local"
RETRY_AFTER_S = "1"
CONTAINER_TYPES: dict[str, Container] = {
    "inferenceserver": "inference-server",
    "storageinitializer": "storage-initializer",
}


def _bearer_classes() -> list[type[BaseAuthentication]]:
    """The configured token authentication classes, reading `Bearer <token>` as Azure's SDK sends it."""
    classes: list[type[BaseAuthentication]] = []
    configured: list[type[BaseAuthentication]] = list(api_settings.DEFAULT_AUTHENTICATION_CLASSES)  # type: ignore[arg-type]
    for cls in configured:
        if issubclass(cls, TokenAuthentication):
            classes.append(type(f"Bearer{cls.__name__}", (cls,), {"keyword": "Bearer"}))
    return classes


def arm_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Azure's error shape: `{"error": {"code", "message", "target", "details"}}`."""
    if isinstance(exc, ApplicationError):
        codes = {401: "AuthenticationFailed", 403: "AuthorizationFailed", 404: "NotFound", 409: "Conflict"}
        body = shapes.error_body(codes.get(exc.status, "UserError"), exc.message, exc.field)
        return Response(body, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code, response.status_code = "AuthenticationFailed", status.HTTP_401_UNAUTHORIZED
        message = "send the studio API token as 'Authorization: Bearer <token>' (see studio sdk-env)"
        if isinstance(exc, exceptions.AuthenticationFailed):
            message = f"{exc.detail}; {message}"
    elif isinstance(exc, exceptions.PermissionDenied):
        code, message = "AuthorizationFailed", str(exc.detail)
    else:
        code, message = type(exc).__name__, str(getattr(exc, "detail", exc))
    response.data = shapes.error_body(code, message)
    return response


class ArmView(APIView):
    """One ARM resource; `scope` is the subscription, resource group and workspace of the URL."""

    authentication_classes = _bearer_classes()

    def get_exception_handler(self) -> Any:
        return arm_exception_handler

    def scope(self) -> shapes.Scope:
        return shapes.Scope(self.kwargs["subscription"], self.kwargs["resource_group"], self.kwargs["workspace"])

    def body(self) -> dict[str, Any]:
        if not isinstance(self.request.data, dict):
            raise ApplicationError("the request body must be a JSON object")
        return dict(self.request.data)

    def operation_url(self, op_id: str) -> str:
        path = f"/azure{self.scope().workspace_id}/operations/{op_id}?api-version=2024-10-01"
        return self.request.build_absolute_uri(path)

    def accepted(self, body: Any, op_id: str, *, code: int, location: bool = False) -> Response:
        """A long-running operation's first answer: the resource so far and where to poll."""
        url = self.operation_url(op_id)
        headers = {"Azure-AsyncOperation": url, "Retry-After": RETRY_AFTER_S}
        if location:
            headers["Location"] = url
        return Response(body, status=code, headers=headers)

    def storage_url(self) -> str:
        """Where the SDK sends blobs: `https://<host>/azure/storage/studio.blob.local`."""
        return self.request.build_absolute_uri(f"/azure/storage/{STORAGE_ACCOUNT}.blob.{STORAGE_SUFFIX}")


def _listing(rows: list[dict[str, Any]]) -> Response:
    return Response({"value": rows, "nextLink": None})


# --- cloud metadata and workspace ---


def cloud_metadata(request: HttpRequest) -> JsonResponse:
    """Azure's cloud-metadata document (ARM_CLOUD_METADATA_URL): where the SDK finds this studio's ARM API."""
    base = request.build_absolute_uri("/azure/")
    cloud = {
        "name": "Studio",
        "portal": f"https://portal.studio.{STORAGE_SUFFIX}",
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": [base],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {"storage": STORAGE_SUFFIX, "acrLoginServer": f"azurecr.{STORAGE_SUFFIX}"},
        "registryDiscoveryEndpoint": base,
    }
    return JsonResponse([cloud], safe=False)


class WorkspaceView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, **kwargs: str) -> Response:
        return Response(shapes.workspace(self.scope()))


class OperationView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, op_id: str, **kwargs: str) -> Response:
        return Response(operations.operation_status(op_id))


# --- online endpoints ---


def _endpoint(scope: shapes.Scope, endpoint: Endpoint) -> dict[str, Any]:
    view = selectors.endpoint_view(endpoint)
    http, https = settings.STUDIO_GATEWAY_URL.rstrip("/"), settings.STUDIO_GATEWAY_HTTPS_URL.rstrip("/")
    for key in ("scoring_uri", "swagger_uri"):  # the same URI, on the gateway's HTTPS port when it has one
        if https and view[key] and view[key].startswith(http + "/"):
            view[key] = https + view[key].removeprefix(http)
    return shapes.endpoint(scope, view, modified_at=endpoint.updated_at)


class EndpointsView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, **kwargs: str) -> Response:
        return _listing([_endpoint(self.scope(), row) for row in selectors.endpoints_list()])


class EndpointView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        return Response(_endpoint(self.scope(), selectors.endpoint_get(name=endpoint)))

    @extend_schema(exclude=True)
    def put(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        existing = selectors.endpoint_find(name=endpoint)
        if existing is None:
            enforce(request, "endpoint.create")
        else:  # the same rule as the REST API: moving traffic alone is an Operator's job
            view = selectors.endpoint_view(existing)
            spec = shapes.endpoint_spec(endpoint, self.body())
            changed = {key for key, value in spec.items() if key != "name" and view.get(key) != value}
            enforce(request, "traffic.set" if changed <= {"traffic", "mirror_traffic"} else "endpoint.update")
        row, created = services.endpoint_put(name=endpoint, body=self.body(), user=request.user)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return self.accepted(_endpoint(self.scope(), row), operations.operation_id("endpoint-put", endpoint), code=code)

    @extend_schema(exclude=True)
    def patch(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        return self.put(request, endpoint, **kwargs)

    @extend_schema(exclude=True)
    def delete(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        row = selectors.endpoint_find(name=endpoint)
        if row is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        enforce(request, "endpoint.delete")
        endpoint_services.endpoint_delete(endpoint=row, user=request.user)
        op_id = operations.operation_id("endpoint-delete", endpoint)
        return self.accepted(None, op_id, code=status.HTTP_202_ACCEPTED, location=True)


class EndpointKeysView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        enforce(request, "keys.read")
        return Response(endpoint_services.endpoint_keys(endpoint=selectors.endpoint_get(name=endpoint)))


class EndpointRegenerateKeysView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        enforce(request, "keys.regenerate")
        body = self.body()
        if "keyType" not in body:
            raise ApplicationError("keyType: required (Primary or Secondary)", field="keyType")
        endpoint_services.keys_regenerate(
            endpoint=selectors.endpoint_get(name=endpoint),
            key_type=str(body["keyType"]),
            key_value=body.get("keyValue"),
        )
        return self.accepted(None, operations.operation_id("done"), code=status.HTTP_202_ACCEPTED)


class EndpointTokenView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        enforce(request, "token.issue")
        token = endpoint_services.token_issue(endpoint=selectors.endpoint_get(name=endpoint))
        return Response(shapes.token(token))


# --- online deployments ---


def _deployment(scope: shapes.Scope, row: Deployment, *, viewer: Any) -> dict[str, Any]:
    view = selectors.deployment_view(row, viewer=viewer)
    model_id = scope.asset_id("models", row.model.name, row.model.version) if row.model else None
    code_id = services.code_id_for(scope, row.code_path) if row.code_path else None
    environment_id = scope.asset_id("environments", row.environment.name, row.environment.version)
    return shapes.deployment(scope, view, model_id=model_id, code_id=code_id, environment_id=environment_id)


class DeploymentsView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, endpoint: str, **kwargs: str) -> Response:
        rows = selectors.deployments_list(endpoint=selectors.endpoint_get(name=endpoint))
        return _listing([_deployment(self.scope(), row, viewer=request.user) for row in rows])


class DeploymentView(ArmView):
    def _row(self, endpoint: str, deployment: str) -> Deployment:
        return selectors.deployment_get(endpoint=selectors.endpoint_get(name=endpoint), name=deployment)

    @extend_schema(exclude=True)
    def get(self, request: Request, endpoint: str, deployment: str, **kwargs: str) -> Response:
        return Response(_deployment(self.scope(), self._row(endpoint, deployment), viewer=request.user))

    @extend_schema(exclude=True)
    def put(self, request: Request, endpoint: str, deployment: str, **kwargs: str) -> Response:
        parent = selectors.endpoint_get(name=endpoint)
        # A PUT carries the whole spec, so it is an update (Deployer) even when only sku.capacity changed.
        exists = selectors.deployment_find(endpoint=endpoint, name=deployment) is not None
        enforce(request, "deployment.update" if exists else "deployment.create")
        row, created = services.deployment_put(endpoint=parent, name=deployment, body=self.body(), user=request.user)
        row = self._row(endpoint, deployment)
        op_id = operations.operation_id("deployment-put", endpoint, deployment, row.generation)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return self.accepted(_deployment(self.scope(), row, viewer=request.user), op_id, code=code)

    @extend_schema(exclude=True)
    def patch(self, request: Request, endpoint: str, deployment: str, **kwargs: str) -> Response:
        return self.put(request, endpoint, deployment, **kwargs)

    @extend_schema(exclude=True)
    def delete(self, request: Request, endpoint: str, deployment: str, **kwargs: str) -> Response:
        row = selectors.deployment_find(endpoint=endpoint, name=deployment)
        if row is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        enforce(request, "deployment.delete")
        endpoint_services.deployment_delete(deployment=row, user=request.user)
        op_id = operations.operation_id("deployment-delete", endpoint, deployment)
        return self.accepted(None, op_id, code=status.HTTP_202_ACCEPTED, location=True)


class DeploymentLogsView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, endpoint: str, deployment: str, **kwargs: str) -> Response:
        enforce(request, "logs.read")
        body = self.body()
        row = selectors.deployment_get(endpoint=selectors.endpoint_get(name=endpoint), name=deployment)
        raw_type = str(body.get("containerType") or "InferenceServer")
        container = CONTAINER_TYPES.get(raw_type.lower().replace("-", "").replace("_", ""))
        if container is None:
            raise ApplicationError(
                f"containerType: expected InferenceServer or StorageInitializer, got {raw_type!r}",
                field="containerType",
            )
        tail = body.get("tail", 100)
        if not isinstance(tail, int) or not 1 <= tail <= 5000:
            raise ApplicationError(f"tail: expected a whole number from 1 to 5000, got {tail!r}", field="tail")
        return Response({"content": read_logs(deployment=row, container=container, lines=tail, instance=None)})


# --- code, model and environment versions ---


class CodeVersionsView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, **kwargs: str) -> Response:
        rows = services.code_versions_list(name=name, content_hash=request.query_params.get("hash"))
        return _listing([self._code(row) for row in rows])

    def _code(self, row: CodeVersion) -> dict[str, Any]:
        uri = f"{self.storage_url()}/{shapes.CONTAINER}/{row.code_path}"
        return shapes.code(self.scope(), row, code_uri=uri)


class CodeVersionView(CodeVersionsView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, version: str = "", **kwargs: str) -> Response:
        return Response(self._code(services.code_version_get(name=name, version=version)))

    @extend_schema(exclude=True)
    def put(self, request: Request, name: str, version: str, **kwargs: str) -> Response:
        enforce(request, "upload.create")
        row = services.code_version_create(name=name, version=version, body=self.body(), user=request.user)
        return Response(self._code(row), status=status.HTTP_201_CREATED)


class CodePendingUploadView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, **kwargs: str) -> Response:
        enforce(request, "upload.create")
        return Response(services.pending_upload_start(storage_url=self.storage_url()))


def _model(scope: shapes.Scope, row: Model) -> dict[str, Any]:
    uri = f"azureml://{scope.workspace_id.strip('/')}/models/{row.name}/versions/{row.version}"
    return shapes.model(scope, selectors.model_view(row), model_uri=uri)


class ModelContainerView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, **kwargs: str) -> Response:
        latest = selectors.model_get(name=name, version="latest")
        return Response(
            {
                "id": f"{self.scope().workspace_id}/models/{name}",
                "name": name,
                "properties": {"latestVersion": str(latest.version), "nextVersion": str(latest.version + 1)},
                "systemData": shapes.system_data(latest.created_at),
            }
        )


class ModelVersionsView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, **kwargs: str) -> Response:
        return _listing([_model(self.scope(), row) for row in selectors.models_list(name=name)])


class ModelVersionView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, version: str, **kwargs: str) -> Response:
        return Response(_model(self.scope(), selectors.model_get(name=name, version=version)))

    @extend_schema(exclude=True)
    def put(self, request: Request, name: str, version: str, **kwargs: str) -> Response:
        enforce(request, "model.create")
        row = services.model_version_create(name=name, version=version, body=self.body(), user=request.user)
        return Response(_model(self.scope(), row), status=status.HTTP_201_CREATED)


def _environment(scope: shapes.Scope, row: Environment) -> dict[str, Any]:
    view = selectors.environment_view(row)
    return shapes.environment(scope, view, conda_text=services.conda_text(row), anonymous=row.anonymous)


class EnvironmentVersionsView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, **kwargs: str) -> Response:
        return _listing([_environment(self.scope(), row) for row in selectors.environments_list(name=name)])


class EnvironmentVersionView(ArmView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str, version: str, **kwargs: str) -> Response:
        return Response(_environment(self.scope(), selectors.environment_get(name=name, version=version)))

    @extend_schema(exclude=True)
    def put(self, request: Request, name: str, version: str, **kwargs: str) -> Response:
        enforce(request, "environment.create")
        row = services.environment_version_create(name=name, version=version, body=self.body(), user=request.user)
        return Response(_environment(self.scope(), row), status=status.HTTP_201_CREATED)


# --- the default datastore ---


class DatastoresView(ArmView):
    def _datastore(self) -> dict[str, Any]:
        account = self.storage_url().removeprefix("https://").removeprefix("http://")
        account = account.removesuffix(f".blob.{STORAGE_SUFFIX}")
        return shapes.datastore(self.scope(), account=account)

    @extend_schema(exclude=True)
    def get(self, request: Request, **kwargs: str) -> Response:
        return _listing([self._datastore()])


class DatastoreView(DatastoresView):
    @extend_schema(exclude=True)
    def get(self, request: Request, name: str = "", **kwargs: str) -> Response:
        if name != shapes.DATASTORE:
            raise ApplicationError(f"datastore {name!r} does not exist; the studio has {shapes.DATASTORE}", status=404)
        return Response(self._datastore())


class DatastoreSecretsView(ArmView):
    @extend_schema(exclude=True)
    def post(self, request: Request, name: str, **kwargs: str) -> Response:
        if name != shapes.DATASTORE:
            raise ApplicationError(f"datastore {name!r} does not exist; the studio has {shapes.DATASTORE}", status=404)
        enforce(request, "upload.create")
        return Response(services.datastore_secrets())


def not_supported(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other ARM route: a clear Azure-shaped 404 naming it, never an HTML page."""
    message = f"the studio does not implement {request.method} /azure/{path} (see docs/sdk.md for what it answers)"
    return JsonResponse(shapes.error_body("NotSupported", message), status=404)
