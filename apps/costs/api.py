"""REST API of costs, quota and autoscale (docs/costs.md). Money is shown as strings with six decimals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError, NotFound
from apps.costs import autoscale, selectors, services
from apps.costs.models import AutoscaleSetting
from apps.endpoints.catalog import quota_view
from apps.endpoints.selectors import deployment_get, endpoint_get
from apps.monitoring.api import window_params

WINDOW = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="default: 30 days before end"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="default: now"),
    OpenApiParameter("endpoint", str),
]


def _plain(value: Any) -> Any:
    """Decimals as money strings, ratios as floats, times as ISO 8601: JSON the CLI can print."""
    if isinstance(value, dict):
        return {key: _plain(item) if not key.endswith("share") else _ratio(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return selectors.money(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _ratio(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def _endpoint_param(request: Request) -> str | None:
    name = request.query_params.get("endpoint")
    if name:
        return endpoint_get(name=name).name
    return None


@extend_schema(parameters=WINDOW, responses=OpenApiTypes.OBJECT)
@api_view(["GET"])
def costs(request: Request) -> Response:
    """Costs over a window: total, per endpoint, per deployment and per day; month to date and projection."""
    start, end = window_params(request, default=timedelta(days=30))
    endpoint = _endpoint_param(request)
    body = selectors.costs_summary(start=start, end=end, endpoint=endpoint)
    body["month"] = selectors.month_summary(endpoint=endpoint)
    body["idle"] = [row for row in selectors.idle_deployments() if endpoint in (None, row["endpoint"])]
    return Response(_plain(body))


@extend_schema(parameters=WINDOW, responses={(200, "text/csv"): OpenApiTypes.STR})
@api_view(["GET"])
def costs_csv(request: Request) -> HttpResponse:
    """The cost rows as CSV: one line per day, endpoint, deployment and instance type."""
    start, end = window_params(request, default=timedelta(days=30))
    rows = selectors.cost_rows(start=start, end=end, endpoint=_endpoint_param(request))
    response = HttpResponse(selectors.costs_csv(rows=rows), content_type="text/csv; charset=utf-8")
    filename = f"studio-costs-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@api_view(["GET"])
def endpoint_costs(request: Request, name: str) -> Response:
    """An endpoint's cost figures: month to date, projection, cost per hour, last 24 hours."""
    endpoint = endpoint_get(name=name)
    return Response(selectors.endpoint_costs_brief(endpoint=endpoint.name, now=timezone.now()))


@api_view(["GET"])
def quota(request: Request) -> Response:
    """Cores of the quota: limit, used by instances, reserved for upgrades (20 %), free."""
    return Response(quota_view())


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["PATCH"])
@requires("price.set")
def instance_type_detail(request: Request, name: str) -> Response:
    """Change an instance type's price per hour."""
    if not isinstance(request.data, dict) or "price_per_hour" not in request.data:
        raise ApplicationError("price_per_hour: required", field="price_per_hour")
    extra = sorted(set(request.data) - {"price_per_hour"})
    if extra:
        raise ApplicationError(f"{extra[0]}: cannot be changed; only price_per_hour can", field=extra[0])
    row = services.instance_type_price_set(name=name, price_per_hour=request.data["price_per_hour"])
    return Response({"name": row.instance_type, "price_per_hour": str(row.price_per_hour), "currency": _currency()})


def _currency() -> str:
    return settings.STUDIO_CURRENCY


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["GET", "PUT", "DELETE"])
@requires(PUT="autoscale.set", DELETE="autoscale.set")
def deployment_autoscale(request: Request, name: str, deployment: str) -> Response:
    """Show, set or remove a deployment's autoscale (rules, schedule profiles, capacity)."""
    row = deployment_get(endpoint=endpoint_get(name=name), name=deployment)
    if request.method == "PUT":
        setting = services.autoscale_set(deployment=row, spec=request.data)
        return Response(autoscale.setting_view(setting))
    if request.method == "DELETE":
        services.autoscale_delete(deployment=row)
        return Response(status=status.HTTP_204_NO_CONTENT)
    try:
        return Response(autoscale.setting_view(row.autoscale))
    except AutoscaleSetting.DoesNotExist:
        raise NotFound(f"deployment {deployment!r} of online endpoint {name!r} has no autoscale setting") from None
