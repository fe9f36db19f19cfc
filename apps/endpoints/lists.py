"""The lists (endpoints, deployments, models, environments) as pages and API answers: search, filter, sort
and paginate in the database, in a fixed number of queries whatever the page size or the number of rows.

Every list reads the same query parameters: `q` (search in name and description), `state`, `compute`, `tag`
(`key` or `key=value`), `owner` (username), `sort` (a column, `-` for descending), `page` and `per_page`; models
and environments also `anonymous=1` (the ones deployments created inline are hidden otherwise). A bad value is an
`ApplicationError` naming the parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from django.db.models import Count, Max, Q, QuerySet

from apps.core.errors import ApplicationError
from apps.endpoints.models import Deployment, Endpoint, Environment, Model, ProvisioningState

T = TypeVar("T")

PER_PAGE = 50
MAX_PER_PAGE = 200
_TAG_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

# Sort keys as the URL names them -> model fields.
ENDPOINT_SORTS = {"name": "name", "created": "created_at", "updated": "updated_at", "state": "provisioning_state"}
DEPLOYMENT_SORTS = {
    "name": "name",
    "created": "created_at",
    "updated": "updated_at",
    "state": "state",
    "instance_type": "instance_type",
}
ASSET_SORTS = {"name": "name", "created": "created_at", "updated": "updated_at"}


@dataclass(frozen=True)
class ListQuery:
    """What a list was asked for (parsed and checked from the query string)."""

    q: str = ""
    state: str = ""
    compute: str = ""
    tag: str = ""
    owner: str = ""
    sort: str = "name"
    page: int = 1
    per_page: int = PER_PAGE
    anonymous: bool = False

    def params(self, **changes: Any) -> str:
        """This query as a URL query string, with some values changed (links to other pages and sorts)."""
        values = replace(self, **changes)
        pairs = [
            (key, getattr(values, key))
            for key in ("q", "state", "compute", "tag", "owner", "sort", "page", "per_page")
            if getattr(values, key) not in ("", None) and getattr(values, key) != getattr(ListQuery, key)
        ]
        if values.anonymous:
            pairs.append(("anonymous", 1))
        return urlencode(pairs)

    def sort_link(self, column: str) -> str:
        """The query string that sorts by `column` (descending when it already sorts ascending by it)."""
        return self.params(sort=f"-{column}" if self.sort == column else column, page=1)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with what the controls around it need."""

    items: list[T]
    total: int
    query: ListQuery

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.per_page))

    @property
    def has_previous(self) -> bool:
        return self.query.page > 1

    @property
    def has_next(self) -> bool:
        return self.query.page < self.pages

    def columns(self, *columns: tuple[str, str]) -> list[dict[str, str]]:
        """Table headers: (label, sort key or "") -> label, the link that sorts by it, aria-sort."""
        heads = []
        for label, key in columns:
            aria = "ascending" if self.query.sort == key else "descending" if self.query.sort == f"-{key}" else "none"
            heads.append(
                {"label": label, "href": self.query.sort_link(key) if key else "", "aria": aria if key else ""}
            )
        return heads

    @property
    def previous_params(self) -> str:
        return self.query.params(page=self.query.page - 1)

    @property
    def next_params(self) -> str:
        return self.query.params(page=self.query.page + 1)


def list_query(params: Mapping[str, str], *, sorts: Mapping[str, str], per_page: int = PER_PAGE) -> ListQuery:
    """Parse a list's query parameters; an ApplicationError names the one that is wrong."""

    def text(key: str) -> str:
        return str(params.get(key) or "").strip()[:200]

    def number(key: str, default: int, maximum: int) -> int:
        raw = text(key)
        if not raw:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ApplicationError(f"{key} must be a whole number from 1 to {maximum}, got {raw!r}", field=key)
        return int(raw)

    sort = text("sort") or "name"
    if sort.removeprefix("-") not in sorts:
        raise ApplicationError(f"sort must be one of {', '.join(sorted(sorts))} (- for descending), got {sort!r}")
    tag = text("tag")
    if tag and not _TAG_KEY.fullmatch(tag.partition("=")[0]):
        raise ApplicationError(f"tag must be key or key=value with a key of letters, digits, _.-, got {tag!r}")
    state = text("state")
    if state and state not in ProvisioningState.values:
        raise ApplicationError(f"state must be one of {', '.join(ProvisioningState.values)}, got {state!r}")
    return ListQuery(
        q=text("q"),
        state=state,
        compute=text("compute"),
        tag=tag,
        owner=text("owner"),
        sort=sort,
        page=number("page", 1, 1_000_000),
        per_page=number("per_page", per_page, MAX_PER_PAGE),
        anonymous=text("anonymous").lower() in ("1", "true", "yes", "on"),
    )


def _common(rows: QuerySet[Any], query: ListQuery) -> QuerySet[Any]:
    if query.q:
        rows = rows.filter(Q(name__icontains=query.q) | Q(description__icontains=query.q))
    if query.tag:
        key, has_value, value = query.tag.partition("=")
        rows = rows.filter(**{f"tags__{key}": value}) if has_value else rows.filter(tags__has_key=key)
    if query.owner:
        rows = rows.filter(created_by__username=query.owner)
    return rows


def _ordered(rows: QuerySet[Any], query: ListQuery, sorts: Mapping[str, str], *tiebreak: str) -> QuerySet[Any]:
    field = sorts[query.sort.removeprefix("-")]
    return rows.order_by(f"-{field}" if query.sort.startswith("-") else field, *(tiebreak or ("name",)), "pk")


def _page(rows: QuerySet[Any], query: ListQuery) -> Page[Any]:
    start = (query.page - 1) * query.per_page
    return Page(items=list(rows[start : start + query.per_page]), total=rows.count(), query=query)


def endpoints_rows(query: ListQuery) -> QuerySet[Endpoint]:
    """The endpoints the query asks for, in its order (the API paginates them)."""
    rows = _common(Endpoint.objects.select_related("created_by"), query)
    if query.state:
        rows = rows.filter(provisioning_state=query.state)
    if query.compute == "local":
        rows = rows.filter(local=True)
    elif query.compute == "managed":
        rows = rows.filter(local=False, compute="")
    elif query.compute:
        rows = rows.filter(compute=query.compute)
    return _ordered(rows, query, ENDPOINT_SORTS)


def endpoints_page(query: ListQuery) -> Page[Endpoint]:
    """A page of endpoints (deployments fetched, creator joined): three queries whatever its size."""
    page = _page(endpoints_rows(query), query)
    deployments: dict[int, list[Deployment]] = {}
    for deployment in Deployment.objects.filter(endpoint__in=[e.pk for e in page.items]).order_by("name"):
        deployments.setdefault(deployment.endpoint_id, []).append(deployment)
    for endpoint in page.items:
        # Cached the way prefetch_related does, so `endpoint.deployments.all()` costs no query.
        endpoint._prefetched_objects_cache = {"deployments": _Prefetched(deployments.get(endpoint.pk, []))}  # type: ignore[attr-defined]
    return page


class _Prefetched(list[Deployment]):
    """A prefetched relation: `.all()` answers from memory."""

    def all(self) -> list[Deployment]:
        return list(self)


def deployments_rows(*, endpoint: Endpoint, query: ListQuery) -> QuerySet[Deployment]:
    """The endpoint's deployments the query asks for (model, environment and instances fetched in fixed queries)."""
    rows = _common(
        Deployment.objects.filter(endpoint=endpoint).select_related("endpoint", "model", "environment", "created_by"),
        query,
    )
    if query.state:
        rows = rows.filter(state=query.state)
    if query.compute:
        rows = rows.filter(instance_type=query.compute)
    return _ordered(rows.prefetch_related("instances"), query, DEPLOYMENT_SORTS)


def model_versions_rows(query: ListQuery) -> QuerySet[Model]:
    """Model versions the query asks for (the API lists versions; anonymous ones only on request)."""
    rows = _common(Model.objects.select_related("created_by"), query)
    if not query.anonymous:
        rows = rows.filter(anonymous=False)
    return _ordered(rows, query, ASSET_SORTS, "name", "-version")


def environment_versions_rows(query: ListQuery) -> QuerySet[Environment]:
    """Environment versions the query asks for (anonymous ones only on request)."""
    rows = _common(Environment.objects.select_related("created_by"), query)
    if not query.anonymous:
        rows = rows.filter(anonymous=False)
    return _ordered(rows, query, ASSET_SORTS)


def _name_groups(rows: QuerySet[Any], query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
    """One page of an asset's names (anonymous ones on request) with version count and times, and the total."""
    if not query.anonymous:
        rows = rows.filter(anonymous=False)
    grouped = (
        rows.values("name")
        .annotate(versions=Count("pk"), created_at=Max("created_at"), updated_at=Max("updated_at"))
        .order_by()
    )
    field = ASSET_SORTS[query.sort.removeprefix("-")]
    order = [f"-{field}" if query.sort.startswith("-") else field, "name"]
    start = (query.page - 1) * query.per_page
    return grouped.count(), list(grouped.order_by(*order)[start : start + query.per_page])


def models_page(query: ListQuery) -> Page[dict[str, Any]]:
    """A page of model names with their latest version, version count and times (anonymous ones on request)."""
    total, names = _name_groups(_common(Model.objects.all(), query), query)
    latest: dict[str, Model] = {}
    for model in Model.objects.filter(name__in=[row["name"] for row in names]).select_related("created_by"):
        if model.name not in latest or model.version > latest[model.name].version:
            latest[model.name] = model
    items = [{**row, "model": latest[row["name"]]} for row in names if row["name"] in latest]
    return Page(items=items, total=total, query=query)


def environments_page(query: ListQuery) -> Page[dict[str, Any]]:
    """A page of environment names with their newest version, version count and times."""
    total, names = _name_groups(_common(Environment.objects.all(), query), query)
    newest: dict[str, Environment] = {}
    for environment in (
        Environment.objects.filter(name__in=[row["name"] for row in names])
        .select_related("created_by")
        .order_by("name", "-created_at", "-id")
    ):
        newest.setdefault(environment.name, environment)
    items = [{**row, "environment": newest[row["name"]]} for row in names if row["name"] in newest]
    return Page(items=items, total=total, query=query)
