"""Routes of the browser studio's endpoint pages (the REST API is in api/urls.py; the Monitoring and
Costs tabs are routed by apps/monitoring and apps/costs)."""

from __future__ import annotations

from django.urls import path

from apps.core import views as core_views
from apps.endpoints.views import (
    consume,
    deployment_spec,
    deployments,
    endpoints,
    environments,
    events,
    logs,
    models,
    scoring,
    traffic,
    yaml_create,
)

urlpatterns = [
    path("", core_views.home, name="home"),
    path("vendor/plotly.min.js", core_views.plotly_js, name="plotly-js"),
    path("models/", models.models_list, name="models"),
    path("models/new/", models.model_register, name="model-register"),
    path("models/<str:name>/", models.model_detail, name="model"),
    path("environments/", environments.environments_list, name="environments"),
    path("environments/new/", environments.environment_create, name="environment-create"),
    path("environments/<str:name>/", environments.environment_detail, name="environment"),
    path("endpoints/", endpoints.endpoints_list, name="endpoints"),
    path("endpoints/new/", endpoints.endpoint_create, name="endpoint-create"),
    path("endpoints/new/yaml/", yaml_create.endpoint_create_yaml, name="endpoint-create-yaml"),
    path("endpoints/new/estimate/", deployments.deployment_estimate, name="deployment-estimate"),
    path("endpoints/<str:name>/", endpoints.endpoint_detail, name="endpoint"),
    path("endpoints/<str:name>/delete/", endpoints.endpoint_delete, name="endpoint-delete"),
    path("endpoints/<str:name>/edit/", endpoints.endpoint_edit, name="endpoint-edit"),
    path("endpoints/<str:name>/endpoint.yml", deployment_spec.endpoint_yaml_download, name="endpoint-yaml"),
    path("endpoints/<str:name>/serving/", endpoints.endpoint_serving, name="endpoint-serving"),
    path("endpoints/<str:name>/traffic/", traffic.endpoint_traffic, name="endpoint-traffic"),
    path("endpoints/<str:name>/traffic/cost/", traffic.traffic_cost, name="traffic-cost"),
    path("endpoints/<str:name>/traffic/<int:change_id>/revert/", traffic.traffic_revert, name="traffic-revert"),
    path("endpoints/<str:name>/test/", scoring.endpoint_test, name="endpoint-test"),
    path("endpoints/<str:name>/consume/", consume.endpoint_consume, name="endpoint-consume"),
    path("endpoints/<str:name>/consume/keys/", consume.endpoint_keys, name="endpoint-keys"),
    path("endpoints/<str:name>/consume/token/", consume.endpoint_token, name="endpoint-token"),
    path("endpoints/<str:name>/logs/", logs.endpoint_logs, name="endpoint-logs"),
    path("endpoints/<str:name>/events/", events.endpoint_events, name="endpoint-events"),
    path("endpoints/<str:name>/deployments/new/", deployments.deployment_create, name="deployment-create"),
    path(
        "endpoints/<str:name>/deployments/new/yaml/", yaml_create.deployment_create_yaml, name="deployment-create-yaml"
    ),
    path("endpoints/<str:name>/deployments/<str:deployment>/", deployments.deployment_card, name="deployment-card"),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/spec/",
        deployment_spec.deployment_spec,
        name="deployment-spec",
    ),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/deployment.yml",
        deployment_spec.deployment_yaml_download,
        name="deployment-yaml",
    ),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/edit/",
        deployment_spec.deployment_edit,
        name="deployment-edit",
    ),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/scale/",
        deployments.deployment_scale,
        name="deployment-scale",
    ),
    path(
        "endpoints/<str:name>/deployments/<str:deployment>/delete/",
        deployments.deployment_delete,
        name="deployment-delete",
    ),
]
