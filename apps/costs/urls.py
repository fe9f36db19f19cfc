"""Routes of the studio's costs pages (the REST API's are in api_urls.py)."""

from __future__ import annotations

from django.urls import path

from apps.costs import views

urlpatterns = [
    path("costs/", views.costs_index, name="costs"),
    path("endpoints/<str:name>/costs/", views.endpoint_costs, name="endpoint-costs"),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/autoscale/",
        views.deployment_autoscale,
        name="deployment-autoscale",
    ),
]
