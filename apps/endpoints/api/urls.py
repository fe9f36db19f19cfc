"""Routes of the REST API under /api/v1/ (see docs/api.md)."""

from __future__ import annotations

from django.urls import path

from apps.endpoints.api import views

urlpatterns = [
    path("uploads", views.uploads, name="api-uploads"),
    path("models", views.models, name="api-models"),
    path("models/<str:name>/versions/<str:version>", views.model_detail, name="api-model"),
    path("environments", views.environments, name="api-environments"),
    path("environments/<str:name>/versions/<str:version>", views.environment_detail, name="api-environment"),
    path("online-endpoints", views.endpoints, name="api-endpoints"),
    path("online-endpoints/<str:name>", views.endpoint_detail, name="api-endpoint"),
    path("online-endpoints/<str:name>/listKeys", views.endpoint_list_keys, name="api-endpoint-keys"),
    path("online-endpoints/<str:name>/regenerateKeys", views.endpoint_regenerate_keys, name="api-endpoint-regenerate"),
    path("online-endpoints/<str:name>/token", views.endpoint_token, name="api-endpoint-token"),
    path("online-endpoints/<str:name>/traffic-changes", views.endpoint_traffic_changes, name="api-traffic-changes"),
    path("online-endpoints/<str:name>/deployments", views.deployments, name="api-deployments"),
    path("online-endpoints/<str:name>/deployments/<str:deployment>", views.deployment_detail, name="api-deployment"),
    path(
        "online-endpoints/<str:name>/deployments/<str:deployment>/logs",
        views.deployment_logs,
        name="api-deployment-logs",
    ),
    path(
        "online-endpoints/<str:name>/deployments/<str:deployment>/render",
        views.deployment_render,
        name="api-deployment-render",
    ),
    path(
        "online-endpoints/<str:name>/deployments/<str:deployment>/events",
        views.deployment_events,
        name="api-deployment-events",
    ),
    path("instance-types", views.instance_types, name="api-instance-types"),
    path("downloads/<str:kind>/<str:digest>", views.download, name="api-download"),
]
