"""Costs, quota, prices and autoscale through the REST API, as the CLI and CI call them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from apps.costs import services
from apps.costs.models import AutoscaleSetting
from apps.endpoints.models import Deployment
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def history(api: Any) -> None:
    endpoint = factories.endpoint("ep1")
    blue = factories.deployment(endpoint, "blue", instance_type="Standard_DS2_v2", instance_count=2)
    services.capacity_record(deployment=blue, instance_count=2, at=T0)
    # scaled in to one instance after 30 hours
    Deployment.objects.filter(pk=blue.pk).update(instance_count=1)
    services.capacity_record(deployment=blue, instance_count=1, at=T0 + timedelta(hours=30))


def test_costs_window_per_deployment_and_day(api: Any, history: None) -> None:
    with time_machine.travel(T0 + timedelta(hours=48), tick=False):
        response = api.get("/api/v1/costs", {"start": "2026-11-10T00:00:00Z", "end": "2026-11-12T00:00:00Z"})
    assert response.status_code == 200, response.content
    body = response.json()
    # day 1: 2 × 24 h; day 2: 2 × 6 h + 1 × 18 h = 30 h; at 0.1460 an hour.
    assert body["days"] == [{"day": "2026-11-10", "cost": "7.008000"}, {"day": "2026-11-11", "cost": "4.380000"}]
    assert body["cost"] == "11.388000"
    assert body["currency"] == "USD"
    (blue,) = body["deployments"]
    assert (blue["deployment"], blue["instance_hours"], blue["cost_per_1000_requests"]) == ("blue", "78.000000", None)
    assert body["month"]["month_to_date"] == "11.388000"
    # one DS2 still running: the rest of November (12th to 30th: 19 days) at 0.1460 an hour
    assert body["month"]["projected_month"] == "77.964000"
    assert [row["deployment"] for row in body["idle"]] == ["blue"]


def test_costs_csv_download(api: Any, history: None) -> None:
    with time_machine.travel(T0 + timedelta(hours=48), tick=False):
        response = api.get("/api/v1/costs.csv", {"start": "2026-11-10T00:00:00Z", "end": "2026-11-12T00:00:00Z"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="studio-costs-20261110-20261112.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["day"], r["instance_hours"], r["cost"]) for r in rows] == [
        ("2026-11-10", "48.000000", "7.008000"),
        ("2026-11-11", "30.000000", "4.380000"),
    ]


def test_endpoint_costs_and_unknown_endpoint(api: Any, history: None) -> None:
    with time_machine.travel(T0 + timedelta(hours=48), tick=False):
        body = api.get("/api/v1/online-endpoints/ep1/costs").json()
    assert body == {
        "currency": "USD",
        "month_to_date": "11.388000",
        "projected_month": "77.964000",
        "cost_per_hour": "0.146000",
        "cost_per_day": "3.504000",
        "cost_per_month": "106.580000",
        "last_24h": "4.380000",  # the 11th: 2 × 6 h + 1 × 18 h
        "mirrored_share_24h": 0.0,
    }
    response = api.get("/api/v1/costs", {"endpoint": "nope"})
    assert (response.status_code, response.json()["error"]["message"]) == (
        404,
        "online endpoint 'nope' does not exist",
    )


def test_quota_and_price_edit(api: Any, history: None) -> None:
    # one DS2 instance (2 cores) holds ceil(1.2) × 2 = 4 cores
    assert api.get("/api/v1/quota").json() == {"limit": 100, "used": 2, "reserved": 2, "free": 96}
    response = api.patch("/api/v1/instance-types/Standard_DS2_v2", {"price_per_hour": "0.2"}, format="json")
    assert response.json() == {"name": "Standard_DS2_v2", "price_per_hour": "0.2000", "currency": "USD"}
    bad = api.patch("/api/v1/instance-types/Standard_DS2_v2", {"vcpus": 64}, format="json")
    assert (bad.status_code, bad.json()["error"]["message"]) == (400, "price_per_hour: required")
    bad = api.patch("/api/v1/instance-types/Standard_DS2_v2", {"price_per_hour": 1, "vcpus": 64}, format="json")
    assert bad.json()["error"]["message"] == "vcpus: cannot be changed; only price_per_hour can"
    missing = api.patch("/api/v1/instance-types/Standard_XL", {"price_per_hour": "1"}, format="json")
    assert missing.status_code == 404


def test_instance_types_list_each_size_with_its_price(api: Any) -> None:
    api.patch("/api/v1/instance-types/Standard_DS2_v2", {"price_per_hour": "0.2"}, format="json")

    body = api.get("/api/v1/instance-types", {"limit": 100}).json()

    rows = {row["name"]: row for row in body["results"]}
    assert body["count"] == len(rows) == 19
    assert rows["Standard_DS2_v2"] == {
        "name": "Standard_DS2_v2",
        "vcpus": 2,
        "memory_gib": 7.0,
        "gpus": 0,
        "gpu_model": None,
        "price_per_hour": "0.2000",
    }
    assert rows["Standard_NC4as_T4_v3"]["gpu_model"] == "T4"
    assert rows["Standard_NC4as_T4_v3"]["price_per_hour"] == "0.5260"


def test_autoscale_put_get_delete(api: Any, history: None) -> None:
    url = "/api/v1/online-endpoints/ep1/deployments/blue/autoscale"
    assert api.get(url).status_code == 404
    spec = {
        "capacity": {"minimum": 1, "maximum": 4, "default": 2},
        "rules": [
            {"metric": "CpuUtilizationPercentage", "operator": "GreaterThan", "threshold": 70, "direction": "Increase"}
        ],
    }
    response = api.put(url, spec, format="json")
    assert response.status_code == 200, response.content
    body = api.get(url).json()
    assert body["capacity"] == {"minimum": 1, "maximum": 4, "default": 2}
    assert body["rules"][0] == {
        "metric": "CpuUtilizationPercentage",
        "operator": "GreaterThan",
        "threshold": 70,
        "window_minutes": 5,
        "direction": "Increase",
        "change": 1,
        "cooldown_minutes": 5,
    }
    bad = api.put(url, {**spec, "rules": [{**spec["rules"][0], "operator": ">"}]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "rules[0].operator"
    assert api.delete(url).status_code == 204
    assert not AutoscaleSetting.objects.exists()


def test_costs_need_a_login(history: None) -> None:
    assert APIClient().get("/api/v1/costs").status_code == 401
    assert APIClient().get("/api/v1/costs.csv").status_code == 401


def test_online_endpoint_show_includes_cost_figures(api: Any, history: None) -> None:
    with time_machine.travel(T0 + timedelta(hours=48), tick=False):
        body = api.get("/api/v1/online-endpoints/ep1").json()
    assert body["costs"]["month_to_date"] == "11.388000"
    assert body["costs"]["cost_per_hour"] == "0.146000"
