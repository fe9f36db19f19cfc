"""The REST API (docs/api.md): thin views over services and selectors, Azure-shaped JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import enforce, requires
from apps.core.errors import ApplicationError
from apps.costs.selectors import (
    NO_PRICE,
    deployment_costs_brief,
    deployments_costs_briefs,
    endpoint_costs_brief,
    endpoints_costs_briefs,
    instance_type_prices,
)
from apps.endpoints import catalog, downloads, lists, selectors, services
from apps.endpoints.backends.base import Container
from apps.endpoints.logs import deployment_logs as read_logs
from apps.endpoints.models import Deployment, Endpoint, InstanceType

JSON_BODY = extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
TRAFFIC_KEYS = {"traffic", "mirror_traffic"}


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApplicationError("the request body must be a JSON object")
    return dict(request.data)


def _endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint as Azure shows it, with what it costs (apps.costs.selectors: the figures every page shows)."""
    return {**selectors.endpoint_view(endpoint), "costs": endpoint_costs_brief(endpoint=endpoint.name)}


def _deployment_view(deployment: Deployment, *, viewer: Any) -> dict[str, Any]:
    """The deployment as Azure shows it to this user, with what it costs."""
    costs = deployment_costs_brief(endpoint=deployment.endpoint.name, deployment=deployment.name)
    return {**selectors.deployment_view(deployment, viewer=viewer), "costs": costs}


def if_match(request: Request) -> int | None:
    """The version an `If-Match` header names (`"4"`, `4` or `W/"4"`); None when absent or `*`."""
    raw = request.headers.get("If-Match", "").strip()
    if not raw or raw == "*":
        return None
    value = raw.removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ApplicationError(f'If-Match: expected an etag such as "4", got {raw!r}', field="If-Match")
    return int(value)


def with_etag(response: Response, version: int) -> Response:
    """The row's version in the ETag header, as the body's `etag` has it."""
    response["ETag"] = f'"{version}"'
    return response


def _list_query(request: Request, sorts: Mapping[str, str]) -> lists.ListQuery:
    """Search, filters and sort of a list (apps/endpoints/lists.py); the API pages with limit and offset."""
    return lists.list_query(request.query_params, sorts=sorts)


def _paginated(request: Request, rows: QuerySet[Any] | list[Any], view: Any) -> Response:
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(rows, request)
    return paginator.get_paginated_response([view(row) for row in page or []])


@extend_schema(request={"multipart/form-data": OpenApiTypes.OBJECT}, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
@parser_classes([MultiPartParser, FormParser])
@requires("upload.create")
def uploads(request: Request) -> Response:
    """Upload a file, or a folder as a zip / tar.gz archive, for a model, code or environment to use."""
    file = request.FILES.get("file")
    if file is None:
        raise ApplicationError("file: no file in the request (send it as multipart field 'file')", field="file")
    fields = cast(Mapping[str, Any], request.data)  # multipart: a QueryDict
    kind = fields.get("kind", "file")
    name = fields.get("name") or file.name
    upload = services.upload_create(stream=file, kind=kind, name=name, user=request.user)
    body = {
        "id": str(upload.uid),
        "name": upload.name,
        "kind": upload.kind,
        "sha256": upload.sha256,
        "size": upload.size,
        "file_count": upload.file_count,
    }
    return Response(body, status=status.HTTP_201_CREATED)


@JSON_BODY
@api_view(["GET", "POST"])
@requires(POST="model.create")
def models(request: Request) -> Response:
    """List models or register a model version."""
    if request.method == "POST":
        model = services.model_create(spec=_body(request), user=request.user)
        return Response(selectors.model_view(model), status=status.HTTP_201_CREATED)
    rows = lists.model_versions_rows(_list_query(request, lists.ASSET_SORTS))
    if request.query_params.get("name"):
        rows = rows.filter(name=request.query_params["name"])
    return _paginated(request, rows, selectors.model_view)


@api_view(["GET"])
def model_detail(request: Request, name: str, version: str) -> Response:
    """One model version (`latest` for the highest)."""
    return Response(selectors.model_view(selectors.model_get(name=name, version=version)))


@JSON_BODY
@api_view(["GET", "POST"])
@requires(POST="environment.create")
def environments(request: Request) -> Response:
    """List environments or register an environment version."""
    if request.method == "POST":
        environment = services.environment_create(spec=_body(request), user=request.user)
        return Response(selectors.environment_view(environment), status=status.HTTP_201_CREATED)
    rows = lists.environment_versions_rows(_list_query(request, lists.ASSET_SORTS))
    if request.query_params.get("name"):
        rows = rows.filter(name=request.query_params["name"])
    return _paginated(request, rows, selectors.environment_view)


@api_view(["GET"])
def environment_detail(request: Request, name: str, version: str) -> Response:
    """One environment version (`latest` for the newest)."""
    return Response(selectors.environment_view(selectors.environment_get(name=name, version=version)))


@JSON_BODY
@api_view(["GET", "POST"])
@requires(POST="endpoint.create")
def endpoints(request: Request) -> Response:
    """List online endpoints or create one."""
    if request.method == "POST":
        endpoint = services.endpoint_create(spec=_body(request), user=request.user)
        return Response(_endpoint_view(endpoint), status=status.HTTP_201_CREATED)
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(lists.endpoints_rows(_list_query(request, lists.ENDPOINT_SORTS)), request) or []
    costs = endpoints_costs_briefs(endpoints=[endpoint.name for endpoint in page])
    return paginator.get_paginated_response(
        [{**selectors.endpoint_view(endpoint), "costs": costs[endpoint.name]} for endpoint in page]
    )


@JSON_BODY
@api_view(["GET", "PATCH", "DELETE"])
@requires(DELETE="endpoint.delete")
def endpoint_detail(request: Request, name: str) -> Response:
    """Show, update or delete an online endpoint."""
    endpoint = selectors.endpoint_get(name=name)
    if request.method == "PATCH":
        changes = _body(request)
        # Moving traffic or the mirror is an Operator's job; any other change updates the endpoint.
        enforce(request, "traffic.set" if changes and set(changes) <= TRAFFIC_KEYS else "endpoint.update")
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        endpoint = services.endpoint_update(
            endpoint=endpoint, changes=changes, user=request.user, if_match=if_match(request), force=force
        )
    elif request.method == "DELETE":
        services.version_check(row=endpoint, if_match=if_match(request))
        services.endpoint_delete(endpoint=endpoint, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return with_etag(Response(_endpoint_view(endpoint)), endpoint.version)


def _keys(endpoint: Any) -> dict[str, str]:
    return services.endpoint_keys(endpoint=endpoint)


@extend_schema(request=None, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
@requires("keys.read")
def endpoint_list_keys(request: Request, name: str) -> Response:
    """The endpoint's primary and secondary keys."""
    return Response(_keys(selectors.endpoint_get(name=name)))


@JSON_BODY
@api_view(["POST"])
@requires("keys.regenerate")
def endpoint_regenerate_keys(request: Request, name: str) -> Response:
    """Replace the primary or the secondary key."""
    body = _body(request)
    if "keyType" not in body:
        raise ApplicationError("keyType: required (Primary or Secondary)", field="keyType")
    endpoint = services.keys_regenerate(
        endpoint=selectors.endpoint_get(name=name), key_type=str(body["keyType"]), key_value=body.get("keyValue")
    )
    return Response(_keys(endpoint))


@extend_schema(request=None, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
@requires("token.issue")
def endpoint_token(request: Request, name: str) -> Response:
    """A bearer token for an aml_token endpoint."""
    return Response(services.token_issue(endpoint=selectors.endpoint_get(name=name)))


@api_view(["GET"])
def endpoint_traffic_changes(request: Request, name: str) -> Response:
    """Who changed the endpoint's traffic or mirroring, newest first."""
    endpoint = selectors.endpoint_get(name=name)

    def view(change: Any) -> dict[str, Any]:
        return {
            "time": change.created_at.isoformat(),
            "user": change.user.get_username() if change.user else None,
            "traffic_before": change.traffic_before,
            "traffic_after": change.traffic_after,
            "mirror_before": change.mirror_before,
            "mirror_after": change.mirror_after,
        }

    return _paginated(request, selectors.traffic_changes(endpoint=endpoint), view)


@JSON_BODY
@api_view(["GET", "POST"])
@requires(POST="deployment.create")
def deployments(request: Request, name: str) -> Response:
    """List an endpoint's deployments or create one."""
    endpoint = selectors.endpoint_get(name=name)
    if request.method == "POST":
        deployment = services.deployment_create(endpoint=endpoint, spec=_body(request), user=request.user)
        return Response(_deployment_view(deployment, viewer=request.user), status=status.HTTP_201_CREATED)
    rows = lists.deployments_rows(endpoint=endpoint, query=_list_query(request, lists.DEPLOYMENT_SORTS))
    costs = deployments_costs_briefs(endpoint=endpoint.name)
    return _paginated(
        request, rows, lambda row: {**selectors.deployment_view(row, viewer=request.user), "costs": costs[row.name]}
    )


@JSON_BODY
@api_view(["GET", "PATCH", "DELETE"])
@requires(DELETE="deployment.delete")
def deployment_detail(request: Request, name: str, deployment: str) -> Response:
    """Show, update or delete a deployment."""
    row = selectors.deployment_get(endpoint=selectors.endpoint_get(name=name), name=deployment)
    if request.method == "PATCH":
        changes = _body(request)
        # A new instance count alone is a scale (Operator); any other change updates the deployment.
        enforce(request, "deployment.scale" if set(changes) == {"instance_count"} else "deployment.update")
        row = services.deployment_update(deployment=row, changes=changes, user=request.user, if_match=if_match(request))
    elif request.method == "DELETE":
        services.version_check(row=row, if_match=if_match(request))
        services.deployment_delete(deployment=row, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return with_etag(Response(_deployment_view(row, viewer=request.user)), row.version)


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
@requires("deployment.render")
def deployment_render(request: Request, name: str, deployment: str) -> Response:
    """The Kubernetes manifests for a deployment spec, as multi-document YAML; nothing is stored or applied."""
    endpoint = selectors.endpoint_get(name=name)
    spec = {**_body(request), "name": deployment}
    return Response({"manifests": services.deployment_render(endpoint=endpoint, spec=spec, user=request.user)})


@extend_schema(
    parameters=[
        OpenApiParameter("container", str, enum=["inference-server", "storage-initializer"]),
        OpenApiParameter("lines", int),
        OpenApiParameter("instance", str),
    ],
    responses=OpenApiTypes.OBJECT,
)
@api_view(["GET"])
@requires("logs.read")
def deployment_logs(request: Request, name: str, deployment: str) -> Response:
    """The last lines of a deployment's inference-server or storage-initializer log."""
    row = selectors.deployment_get(endpoint=selectors.endpoint_get(name=name), name=deployment)
    container = request.query_params.get("container", "inference-server")
    if container not in ("inference-server", "storage-initializer"):
        raise ApplicationError(
            f"container: expected inference-server or storage-initializer, got {container!r}", field="container"
        )
    raw_lines = request.query_params.get("lines", "100")
    if not raw_lines.isdigit() or not 1 <= int(raw_lines) <= 5000:
        raise ApplicationError(f"lines: expected a whole number from 1 to 5000, got {raw_lines!r}", field="lines")
    content = read_logs(
        deployment=row,
        container=cast(Container, container),  # one of the two, checked above
        lines=int(raw_lines),
        instance=request.query_params.get("instance"),
    )
    return Response({"content": content})


@api_view(["GET"])
def deployment_events(request: Request, name: str, deployment: str) -> Response:
    """The deployment's timeline, oldest first."""
    row = selectors.deployment_get(endpoint=selectors.endpoint_get(name=name), name=deployment)
    return _paginated(request, selectors.deployment_events(deployment=row), selectors.event_view)


@api_view(["GET"])
def instance_types(request: Request) -> Response:
    """The instance-type catalog with prices per hour."""
    prices = instance_type_prices()

    def view(row: InstanceType) -> dict[str, Any]:
        return {
            "name": row.name,
            "vcpus": row.vcpus,
            "memory_gib": float(row.memory_gib),
            "gpus": row.gpus,
            "gpu_model": row.gpu_model or None,
            "price_per_hour": str(prices.get(row.name, NO_PRICE)),
        }

    return _paginated(request, catalog.instance_types_list(), view)


async def download(request: HttpRequest, kind: str, digest: str) -> HttpResponseBase:
    """A model's or a code snapshot's files as a tar stream, for a pod's storage initializer.

    No login: the deployment's download credential (`Authorization: Bearer ...`) is the auth. A plain async
    view rather than DRF's, so the response streams from an async iterator (Django under ASGI would buffer
    a synchronous one whole before the first byte).
    """
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApplicationError(
                "download: no credential; send the deployment's STUDIO_DOWNLOAD_TOKEN as 'Authorization: Bearer ...'",
                field="credential",
                status=401,
            )
        root, name = await sync_to_async(downloads.download_source)(
            credential=credential.strip(), kind=kind, digest=digest
        )
        plan = await asyncio.to_thread(downloads.tar_plan, root)
    except ApplicationError as error:
        body = {"error": {"code": type(error).__name__, "message": error.message, "field": error.field}}
        return JsonResponse(body, status=error.status)
    response = StreamingHttpResponse(downloads.tar_stream(plan), content_type="application/x-tar")
    response["Content-Length"] = str(plan.size)
    response["Content-Disposition"] = f'attachment; filename="{name}.tar"'
    response["ETag"] = f'"{kind}-{digest}"'
    return response
