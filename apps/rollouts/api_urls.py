"""Routes of the rollout API under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.rollouts import api

urlpatterns = [
    path("online-endpoints/<str:name>/rollout", api.rollout, name="api-rollout"),
    path("online-endpoints/<str:name>/rollout/<str:action>", api.rollout_action, name="api-rollout-action"),
]
