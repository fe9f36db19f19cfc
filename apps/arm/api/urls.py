"""Routes of the Azure-shaped API under /azure/ (docs/sdk.md): ARM resources, the cloud metadata, blobs."""

from __future__ import annotations

from django.urls import path, re_path

from apps.arm.api import blob, views

WS = (
    "subscriptions/<str:subscription>/resourceGroups/<str:resource_group>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<str:workspace>"
)
EP = f"{WS}/onlineEndpoints/<str:endpoint>"
DEP = f"{EP}/deployments/<str:deployment>"

urlpatterns = [
    path("metadata/endpoints", views.cloud_metadata, name="arm-metadata"),
    path("storage/<str:account>/<str:container>/<path:blob>", blob.blob, name="arm-blob"),
    path(WS, views.WorkspaceView.as_view(), name="arm-workspace"),
    path(f"{WS}/operations/<str:op_id>", views.OperationView.as_view(), name="arm-operation"),
    path(f"{WS}/onlineEndpoints", views.EndpointsView.as_view(), name="arm-endpoints"),
    path(EP, views.EndpointView.as_view(), name="arm-endpoint"),
    path(f"{EP}/listKeys", views.EndpointKeysView.as_view(), name="arm-endpoint-keys"),
    path(f"{EP}/regenerateKeys", views.EndpointRegenerateKeysView.as_view(), name="arm-endpoint-regenerate"),
    path(f"{EP}/token", views.EndpointTokenView.as_view(), name="arm-endpoint-token"),
    path(f"{EP}/deployments", views.DeploymentsView.as_view(), name="arm-deployments"),
    path(DEP, views.DeploymentView.as_view(), name="arm-deployment"),
    path(f"{DEP}/getLogs", views.DeploymentLogsView.as_view(), name="arm-deployment-logs"),
    path(f"{WS}/codes/<str:name>/versions", views.CodeVersionsView.as_view(), name="arm-codes"),
    path(f"{WS}/codes/<str:name>/versions/<str:version>", views.CodeVersionView.as_view(), name="arm-code"),
    path(
        f"{WS}/codes/<str:name>/versions/<str:version>/startPendingUpload",
        views.CodePendingUploadView.as_view(),
        name="arm-code-upload",
    ),
    path(f"{WS}/models/<str:name>", views.ModelContainerView.as_view(), name="arm-model-container"),
    path(f"{WS}/models/<str:name>/versions", views.ModelVersionsView.as_view(), name="arm-models"),
    path(f"{WS}/models/<str:name>/versions/<str:version>", views.ModelVersionView.as_view(), name="arm-model"),
    path(f"{WS}/environments/<str:name>/versions", views.EnvironmentVersionsView.as_view(), name="arm-environments"),
    path(
        f"{WS}/environments/<str:name>/versions/<str:version>",
        views.EnvironmentVersionView.as_view(),
        name="arm-environment",
    ),
    path(f"{WS}/datastores", views.DatastoresView.as_view(), name="arm-datastores"),
    path(f"{WS}/datastores/<str:name>", views.DatastoreView.as_view(), name="arm-datastore"),
    path(f"{WS}/datastores/<str:name>/listSecrets", views.DatastoreSecretsView.as_view(), name="arm-datastore-secrets"),
    re_path(r"^(?P<path>.*)$", views.not_supported, name="arm-not-supported"),
]
