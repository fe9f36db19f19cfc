"""Routes of the studio's monitoring pages."""

from __future__ import annotations

from django.urls import path

from apps.monitoring import views

urlpatterns = [
    path("monitoring/", views.monitoring_index, name="monitoring"),
    path("monitoring/endpoints/<str:name>/figures.json", views.endpoint_figures_json, name="endpoint-figures"),
    path("endpoints/<str:name>/monitoring/", views.endpoint_monitoring, name="endpoint-monitoring"),
]
