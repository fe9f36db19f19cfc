"""REST API of the metrics store (docs/monitoring.md): series under Azure Monitor's metric names and
the comparison of two deployments. Thin views over selectors; errors in the studio's one shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ApplicationError
from apps.endpoints.selectors import deployment_get, endpoint_get
from apps.monitoring import compare, selectors

MAX_WINDOW = timedelta(days=400)
MAX_POINTS = 50_000


def time_param(request: Request, name: str, default: datetime) -> datetime:
    """An ISO 8601 time from the query string (UTC when no offset is given)."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise ApplicationError(
            f"{name}: expected an ISO 8601 time like 2026-11-20T12:00:00Z, got {raw!r}", field=name
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def window_params(request: Request, *, default: timedelta = timedelta(hours=1)) -> tuple[datetime, datetime]:
    """start and end from the query string; the last hour when both are missing."""
    end = time_param(request, "end", timezone.now())
    start = time_param(request, "start", end - default)
    if end <= start:
        raise ApplicationError(f"end: must be after start ({start.isoformat()}), got {end.isoformat()}", field="end")
    if end - start > MAX_WINDOW:
        raise ApplicationError("start: the window can be at most 400 days long", field="start")
    return start, end


def _mirrored(request: Request) -> bool | None:
    raw = request.query_params.get("mirrored", "false").lower()
    choices = {"false": False, "true": True, "all": None}
    if raw not in choices:
        raise ApplicationError(f"mirrored: expected false, true or all, got {raw!r}", field="mirrored")
    return choices[raw]


def _stamp(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@extend_schema(
    parameters=[
        OpenApiParameter("metric", str, enum=list(selectors.METRICS), required=True),
        OpenApiParameter("start", OpenApiTypes.DATETIME),
        OpenApiParameter("end", OpenApiTypes.DATETIME),
        OpenApiParameter("grain", str, enum=list(selectors.GRAINS)),
        OpenApiParameter("deployment", str, many=True),
        OpenApiParameter("mirrored", str, enum=["false", "true", "all"]),
    ],
    responses=OpenApiTypes.OBJECT,
)
@api_view(["GET"])
def endpoint_metrics(request: Request, name: str) -> Response:
    """One metric of an endpoint over a window, a series per deployment (and status class or instance)."""
    endpoint = endpoint_get(name=name)
    metric = request.query_params.get("metric")
    if not metric:
        raise ApplicationError(f"metric: required; one of {', '.join(selectors.METRICS)}", field="metric")
    start, end = window_params(request)
    grain = selectors.grain_parse(request.query_params.get("grain"))
    if (end - start).total_seconds() / grain > MAX_POINTS:
        raise ApplicationError(
            f"grain: {selectors.Grain(grain).label} over {(end - start).total_seconds() / 3600:g} hours is more than "
            f"{MAX_POINTS} points a series; "
            "use a coarser grain (1m, 1h) or a shorter window",
            field="grain",
        )
    deployments = request.query_params.getlist("deployment") or None
    series = selectors.metric_series(
        endpoint=endpoint.name,
        metric=metric,
        start=start,
        end=end,
        grain=grain,
        deployments=deployments,
        mirrored=_mirrored(request),
    )
    return Response(
        {
            "endpoint": endpoint.name,
            "metric": metric,
            "grain": selectors.Grain(grain).label,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "timeseries": [
                {
                    "dimensions": item["dimensions"],
                    "data": [
                        {"timeStamp": _stamp(ts), "value": value}
                        for ts, value in zip(item["timestamps"], item["values"], strict=True)
                    ],
                }
                for item in series
            ],
        }
    )


@extend_schema(
    parameters=[
        OpenApiParameter("a", str, required=True),
        OpenApiParameter("b", str, required=True),
        OpenApiParameter("start", OpenApiTypes.DATETIME),
        OpenApiParameter("end", OpenApiTypes.DATETIME),
        OpenApiParameter("tolerance", float, description="relative tolerance for numbers, e.g. 1e-6"),
    ],
    responses=OpenApiTypes.OBJECT,
)
@api_view(["GET"])
def endpoint_compare(request: Request, name: str) -> Response:
    """Two deployments side by side over a window, with the agreement rate of mirrored answers."""
    endpoint = endpoint_get(name=name)
    names = []
    for key in ("a", "b"):
        value = request.query_params.get(key)
        if not value:
            raise ApplicationError(f"{key}: required (a deployment name of {endpoint.name!r})", field=key)
        names.append(deployment_get(endpoint=endpoint, name=value).name)
    start, end = window_params(request)
    tolerance = compare.tolerance_parse(request.query_params.get("tolerance"))
    body = compare.deployments_compare(
        endpoint=endpoint.name, a=names[0], b=names[1], start=start, end=end, rel_tol=tolerance
    )
    return Response(body)
