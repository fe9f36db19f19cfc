"""Lists that scale: search, filter, sort and paging in the database, in a number of queries that does not grow
with the number of endpoints or the page size (pages and API)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.endpoints.models import Deployment, Endpoint, Environment, Model, ProvisioningState
from tests import factories

PAGES = ["/endpoints/", "/models/", "/environments/"]
API = ["/api/v1/online-endpoints", "/api/v1/models", "/api/v1/environments"]


def _grow(total: int) -> None:
    """`total` endpoints with three deployments each (and as many models and environments), in bulk."""
    template = Deployment.objects.select_related("model", "environment").first()
    if template is None:
        template = factories.deployment(factories.endpoint("ep-0000"), "blue")
    have = Endpoint.objects.count()
    fields = {
        f.attname: getattr(template, f.attname)
        for f in Deployment._meta.concrete_fields
        if f.attname not in ("id", "uid", "endpoint_id", "name", "created_at", "updated_at")
    }
    endpoints = Endpoint.objects.bulk_create(
        Endpoint(name=f"ep-{i:04d}", traffic={"blue": 100}, tags={"team": "a" if i % 2 else "b"})
        for i in range(have, total)
    )
    Deployment.objects.bulk_create(
        Deployment(endpoint=ep, name=name, **fields) for ep in endpoints for name in ("blue", "green", "red")
    )
    model, env = template.model, template.environment
    Model.objects.bulk_create(
        Model(name=f"model-{i:04d}", version=1, path_name=model.path_name) for i in range(have, total)
    )
    Environment.objects.bulk_create(
        Environment(name=f"env-{i:04d}", version="1", image=env.image) for i in range(have, total)
    )


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(queries)


@pytest.mark.parametrize("url", PAGES + API)
def test_list_query_count_is_the_same_for_10_and_1000_endpoints_and_any_page_size(
    url: str, client: Any, api: Any
) -> None:
    client.force_login(factories.user("bob"))
    http = api if url.startswith("/api/") else client
    size = "limit" if url.startswith("/api/") else "per_page"
    _grow(10)
    small = [_queries(http, f"{url}?{size}={n}") for n in (5, 10)]
    _grow(1000)
    large = [_queries(http, f"{url}?{size}={n}") for n in (10, 200)]

    assert small[0] == small[1] == large[0] == large[1], (small, large)


def test_deployments_api_query_count_does_not_grow_with_deployments(api: Any) -> None:
    _grow(3)
    few = _queries(api, "/api/v1/online-endpoints/ep-0001/deployments")
    ep = Endpoint.objects.get(name="ep-0001")
    template = Deployment.objects.filter(endpoint=ep).first()
    assert template is not None
    for name in ("d1", "d2", "d3", "d4", "d5", "d6"):
        template.pk, template.uid, template.name = None, uuid.uuid4(), name
        template.save()
    assert _queries(api, "/api/v1/online-endpoints/ep-0001/deployments") == few


def test_endpoints_list_searches_filters_sorts_and_pages(client: Any, api: Any) -> None:
    client.force_login(factories.user("bob"))
    _grow(30)
    Endpoint.objects.filter(name="ep-0007").update(provisioning_state=ProvisioningState.DELETING)

    page = client.get("/endpoints/?q=ep-001&sort=-name&per_page=4").content.decode()
    assert page.index("ep-0019") < page.index("ep-0016")  # descending, first page of ep-0010..ep-0019
    assert "ep-0015" not in page and "ep-0020" not in page
    assert "10 in all · page 1 of 3" in page
    assert 'rel="next"' in page

    deleting = api.get("/api/v1/online-endpoints?state=Deleting").json()
    assert [row["name"] for row in deleting["results"]] == ["ep-0007"]
    tagged = api.get("/api/v1/online-endpoints?tag=team=a&limit=100").json()
    assert tagged["count"] == 15 and all(row["tags"] == {"team": "a"} for row in tagged["results"])


def test_a_bad_list_parameter_is_named_not_a_stack_trace(client: Any, api: Any) -> None:
    client.force_login(factories.user("bob"))
    response = api.get("/api/v1/online-endpoints?sort=cost")
    assert response.status_code == 400
    assert "sort must be one of" in response.json()["error"]["message"]
    page = client.get("/endpoints/?per_page=0")
    assert "per_page must be a whole number from 1 to 200" in page.content.decode()


def test_anonymous_models_are_hidden_unless_asked_for(client: Any, api: Any) -> None:
    client.force_login(factories.user("bob"))
    ep = factories.endpoint("anon-ep")
    upload = factories.upload_file(b"weights")
    factories.deployment(ep, "blue", model={"path": f"upload:{upload.uid}"})
    named = Model.objects.exclude(anonymous=True).values_list("name", flat=True).first()

    assert "anon-ep-blue-model" not in client.get("/models/").content.decode()
    assert "anon-ep-blue-model" in client.get("/models/?anonymous=1").content.decode()
    assert named in client.get("/models/").content.decode()
    names = [row["name"] for row in api.get("/api/v1/models?anonymous=1").json()["results"]]
    assert "anon-ep-blue-model" in names
    assert "anon-ep-blue-model" not in [row["name"] for row in api.get("/api/v1/models").json()["results"]]


def test_the_endpoint_state_is_the_same_in_list_api_and_page_when_an_idle_deployment_failed(
    client: Any, api: Any
) -> None:
    client.force_login(factories.user("bob"))
    ep = factories.endpoint("mixed")
    factories.deployment(ep, "blue")
    factories.deployment(ep, "green")
    Deployment.objects.filter(name="blue").update(state=ProvisioningState.SUCCEEDED)
    Deployment.objects.filter(name="green").update(state=ProvisioningState.FAILED)

    api_state = api.get("/api/v1/online-endpoints/mixed").json()["provisioning_state"]
    listed = api.get("/api/v1/online-endpoints").json()["results"][0]["provisioning_state"]
    page = client.get("/endpoints/").content.decode()

    assert api_state == listed == "Succeeded"
    row = page[page.index('id="endpoint-') :]
    assert '<span class="badge Succeeded">Succeeded</span>' in row[: row.index("</td>", row.index("badge"))]
