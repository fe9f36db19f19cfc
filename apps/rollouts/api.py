"""The rollout API (docs/rollouts.md): start and show an endpoint's rollout, and act on it."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from apps.endpoints import selectors as endpoint_selectors
from apps.rollouts import selectors, services


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["GET", "POST"])
def rollout(request: Request, name: str) -> Response:
    """Start a rollout (the rollout YAML as JSON), or show the running one (else the last one)."""
    endpoint = endpoint_selectors.endpoint_get(name=name)
    if request.method == "POST":
        started = services.rollout_start(endpoint=endpoint, doc=request.data, user=request.user)
        started.refresh_from_db()
        return Response(selectors.rollout_view(started), status=status.HTTP_201_CREATED)
    return Response(selectors.rollout_view(selectors.rollout_latest(endpoint=endpoint)))


@extend_schema(request=None, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
def rollout_action(request: Request, name: str, action: str) -> Response:
    """pause, resume, promote or abort the endpoint's rollout."""
    endpoint = endpoint_selectors.endpoint_get(name=name)
    current = selectors.rollout_latest(endpoint=endpoint)
    done = services.rollout_act(rollout=current, action=action, user=request.user)
    done.refresh_from_db()
    return Response(selectors.rollout_view(done))
