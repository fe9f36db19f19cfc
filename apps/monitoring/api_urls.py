"""REST routes of the metrics store, included under /api/v1/ (docs/monitoring.md)."""

from __future__ import annotations

from django.urls import path

from apps.monitoring import api

urlpatterns = [
    path("online-endpoints/<str:name>/metrics", api.endpoint_metrics, name="api-endpoint-metrics"),
    path("online-endpoints/<str:name>/compare", api.endpoint_compare, name="api-endpoint-compare"),
]
