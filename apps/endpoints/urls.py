"""Routes of the browser studio (the REST API is in api/urls.py)."""

from __future__ import annotations

from django.urls import path

from apps.core import views as core_views
from apps.endpoints import views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("vendor/plotly.min.js", core_views.plotly_js, name="plotly-js"),
    path("models/", views.models_list, name="models"),
    path("models/new/", views.model_register, name="model-register"),
    path("models/<str:name>/", views.model_detail, name="model"),
    path("environments/", views.environments_list, name="environments"),
    path("environments/new/", views.environment_create, name="environment-create"),
    path("environments/<str:name>/", views.environment_detail, name="environment"),
    path("endpoints/", views.endpoints_list, name="endpoints"),
    path("endpoints/new/", views.endpoint_create, name="endpoint-create"),
    path("endpoints/<str:name>/", views.endpoint_detail, name="endpoint"),
    path("endpoints/<str:name>/delete/", views.endpoint_delete, name="endpoint-delete"),
    path("endpoints/<str:name>/traffic/", views.endpoint_traffic, name="endpoint-traffic"),
    path("endpoints/<str:name>/traffic/<int:change_id>/revert/", views.traffic_revert, name="traffic-revert"),
    path("endpoints/<str:name>/test/", views.endpoint_test, name="endpoint-test"),
    path("endpoints/<str:name>/consume/", views.endpoint_consume, name="endpoint-consume"),
    path("endpoints/<str:name>/consume/keys/", views.endpoint_keys, name="endpoint-keys"),
    path("endpoints/<str:name>/consume/token/", views.endpoint_token, name="endpoint-token"),
    path("endpoints/<str:name>/monitoring/", views.endpoint_monitoring, name="endpoint-monitoring"),
    path("endpoints/<str:name>/logs/", views.endpoint_logs, name="endpoint-logs"),
    path("endpoints/<str:name>/events/", views.endpoint_events, name="endpoint-events"),
    path("endpoints/<str:name>/costs/", views.endpoint_costs, name="endpoint-costs"),
    path("endpoints/<str:name>/deployments/new/", views.deployment_create, name="deployment-create"),
    path("endpoints/<str:name>/deployments/<str:deployment>/", views.deployment_card, name="deployment-card"),
    path("endpoints/<str:name>/deployments/<str:deployment>/scale/", views.deployment_scale, name="deployment-scale"),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/delete/", views.deployment_delete, name="deployment-delete"
    ),
]
