"""REST routes of costs, quota and autoscale, included under /api/v1/ (docs/costs.md)."""

from __future__ import annotations

from django.urls import path

from apps.costs import api

urlpatterns = [
    path("costs", api.costs, name="api-costs"),
    path("costs.csv", api.costs_csv, name="api-costs-csv"),
    path("quota", api.quota, name="api-quota"),
    path("instance-types/<str:name>", api.instance_type_detail, name="api-instance-type"),
    path("online-endpoints/<str:name>/costs", api.endpoint_costs, name="api-endpoint-costs"),
    path(
        "online-endpoints/<str:name>/deployments/<str:deployment>/autoscale",
        api.deployment_autoscale,
        name="api-deployment-autoscale",
    ),
]
