"""What apps/monitoring tells open pages: an endpoint's new Monitoring figures, pushed once per ingest to
the Monitoring tabs open on it (apps/core/broadcast.py), so no socket reads the store on a timer."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.core.serializers.json import DjangoJSONEncoder

from apps.core import broadcast
from apps.monitoring import charts


def charts_payload(*, endpoint: str) -> broadcast.ChartsPayload:
    """The endpoint's Monitoring figures as plain JSON values (times as ISO 8601, as the page's first draw)."""
    figures = charts.monitoring_figures(endpoint=endpoint) or {}
    return {
        "type": "endpoint.charts",
        "endpoint": endpoint,
        "figures": json.loads(json.dumps(figures, cls=DjangoJSONEncoder)),
    }


def charts_changed(*, endpoints: Iterable[str]) -> int:
    """Push each endpoint's figures to its open Monitoring tabs; returns how many endpoints were pushed."""
    pushed = 0
    for endpoint in sorted(set(endpoints)):
        broadcast.send(broadcast.charts_group(endpoint), charts_payload(endpoint=endpoint))
        pushed += 1
    return pushed
