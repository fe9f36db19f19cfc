"""Websocket routes; each app's consumers join per-object groups."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
