"""Websocket routes; each app's consumers join per-object groups."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.endpoints import consumers

websocket_urlpatterns: list[URLPattern] = [
    path("ws/studio/", consumers.StudioConsumer.as_asgi()),
    path("ws/endpoints/<str:name>/", consumers.EndpointConsumer.as_asgi()),
    path("ws/endpoints/<str:name>/charts/", consumers.ChartsConsumer.as_asgi()),
    path("ws/endpoints/<str:name>/logs/", consumers.LogsConsumer.as_asgi()),
]
