"""Routes of the rollout panel on an endpoint's Traffic tab."""

from __future__ import annotations

from django.urls import path

from apps.rollouts import views

urlpatterns = [
    path("endpoints/<str:name>/rollout/", views.rollout_panel, name="rollout-panel"),
    path("endpoints/<str:name>/rollout/start/", views.rollout_start, name="rollout-start"),
    path("endpoints/<str:name>/rollout/figures/", views.rollout_figures_json, name="rollout-figures"),
    path("endpoints/<str:name>/rollout/<str:action>/", views.rollout_action, name="rollout-action"),
]
