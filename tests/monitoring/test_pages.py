"""The Monitoring pages as a user reads them: the time range in the URL, small charts per endpoint, the mirror panel."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client
from django.utils import timezone

from apps.monitoring import services
from apps.monitoring.views import window_parse
from gateway.wire import MirrorPairRecord
from tests import factories
from tests.monitoring.gateway import Request, aggregate, push, push_pairs

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def browser(db: None) -> Client:
    client = Client()
    client.force_login(factories.user("alice"))
    return client


def figures_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="figures-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page embeds no figures"
    return json.loads(match.group(1))


def test_window_parse_reads_preset_and_custom_ranges_and_names_a_bad_value() -> None:
    week = window_parse(QueryDict("range=7d&percentile=p99"), now=NOW)
    assert (week.start, week.end, week.percentile, week.error) == (NOW - timedelta(days=7), NOW, "p99", "")
    custom = window_parse(QueryDict("range=custom&start=2026-11-01T08:00&end=2026-11-02T08:30"), now=NOW)
    assert (custom.start, custom.end) == (
        datetime(2026, 11, 1, 8, tzinfo=UTC),
        datetime(2026, 11, 2, 8, 30, tzinfo=UTC),
    )
    assert "range=custom" in custom.query() and "start=2026-11-01T08%3A00" in custom.query()
    bad = window_parse(QueryDict("range=custom&start=yesterday&end=2026-11-02T08:30"), now=NOW)
    assert bad.key == "1h" and bad.start == NOW - timedelta(hours=1)
    assert bad.error == "start: expected a time like 2026-11-30T14:00 (UTC), got 'yesterday'"
    backwards = window_parse(QueryDict("range=custom&start=2026-11-02T08:00&end=2026-11-01T08:00"), now=NOW)
    assert backwards.error == "end: must be after start"
    assert window_parse(QueryDict("range=2y&percentile=p42"), now=NOW).error == (
        "percentile: expected one of p50, p90, p95, p99, got 'p42'; "
        "range: expected one of 15m, 1h, 6h, 24h, 7d, 30d or custom, got '2y'"
    )


def test_endpoint_tab_keeps_range_and_percentile_in_the_url_and_draws_one_line_per_deployment(browser: Client) -> None:
    ep = factories.endpoint("ep1")
    factories.deployment(ep, "blue")
    now = timezone.now()
    push(
        aggregate(
            Request(ts=(now - timedelta(hours=3)).timestamp(), deployment="blue", latency_ms=20.0) for _ in range(4)
        )
    )
    services.metrics_ingest()

    last_hour = browser.get("/endpoints/ep1/monitoring/").content.decode()
    assert 'id="charts-empty"' in last_hour and "latency" not in figures_of(last_hour)
    six_hours = browser.get("/endpoints/ep1/monitoring/?range=6h&percentile=p50").content.decode()
    figures = figures_of(six_hours)
    assert [t["name"] for t in figures["latency"]["data"]] == ["blue"]
    assert figures["latency"]["layout"]["title"]["text"] == "Request latency (p50)"
    assert '<a href="?range=6h&amp;percentile=p50" aria-current="true">6 hours</a>' in six_hours
    assert '<a href="?range=6h&amp;percentile=p99">p99</a>' in six_hours
    assert "data-refetch-on-push" in six_hours and "figures.json?range=6h&amp;percentile=p50" in six_hours
    answer = browser.get("/monitoring/endpoints/ep1/figures.json?range=6h").json()
    assert [t["name"] for t in answer["figures"]["requests"]["data"]] == ["blue"]


def test_a_bad_range_is_named_on_the_page_not_a_crash(browser: Client) -> None:
    ep = factories.endpoint("ep1")
    factories.deployment(ep, "blue")
    page = browser.get("/endpoints/ep1/monitoring/?range=custom&start=2026-13-01T00:00&end=x")
    assert page.status_code == 200
    assert (
        "start: expected a time like 2026-11-30T14:00 (UTC), got &#x27;2026-13-01T00:00&#x27;" in page.content.decode()
    )


def test_global_monitoring_page_draws_small_charts_for_every_endpoint(browser: Client) -> None:
    for name in ("ep1", "ep2"):
        factories.deployment(factories.endpoint(name), "blue")
    now = timezone.now()
    push(
        aggregate(
            Request(ts=(now - timedelta(minutes=5)).timestamp(), deployment="blue", latency_ms=5.0) for _ in range(3)
        )
    )
    services.metrics_ingest()
    html = browser.get("/monitoring/?range=15m").content.decode()
    assert sorted(figures_of(html)) == ["ep1-latency", "ep1-requests"]
    assert "(no requests in this range)" in html  # ep2
    assert "/endpoints/ep2/monitoring/?range=15m&amp;percentile=p95" in html


def test_mirroring_endpoint_shows_agreement_latency_and_the_answers_that_differed(browser: Client) -> None:
    ep = factories.endpoint("ep1")
    factories.deployment(ep, "blue")
    factories.deployment(ep, "green")
    ep.traffic, ep.mirror_traffic = {"blue": 100}, {"green": 10}
    ep.save()
    ts = (timezone.now() - timedelta(minutes=2)).timestamp()

    def pair(n: int, shadow: str) -> MirrorPairRecord:
        return MirrorPairRecord(
            ts=ts + n,
            endpoint="ep1",
            deployment="green",
            live_deployment="blue",
            request_id=f"req-{n}",
            live_status=200,
            shadow_status=200,
            live_body='{"y": 1}',
            shadow_body=shadow,
            truncated=False,
        )

    push_pairs([pair(0, '{"y": 1}'), pair(1, '{"y": 1}'), pair(2, '{"y": 1}'), pair(3, '{"y": 2}')])
    services.mirror_pairs_ingest()
    load = [Request(ts=ts, deployment="blue", latency_ms=10.0)] * 4
    load += [Request(ts=ts, deployment="green", latency_ms=40.0, mirrored=True)] * 4
    push(aggregate(load))
    services.metrics_ingest()

    html = browser.get("/endpoints/ep1/monitoring/").content.decode()
    panel = html[html.index('id="mirror-panel"') :]
    assert re.search(r'id="mirror-green-agreement">75.0 %<', panel)
    latency = panel[panel.index('id="mirror-green-latency"') : panel.index("</table>")]
    assert "<td>green</td><td>mirrored copies</td>" in latency and "<td>blue</td><td>live</td>" in latency
    assert "$.y: 1 != 2" in panel and "req-3" in panel


def test_endpoint_without_mirror_has_no_mirror_panel(browser: Client) -> None:
    factories.deployment(factories.endpoint("ep1"), "blue")
    assert 'id="mirror-panel"' not in browser.get("/endpoints/ep1/monitoring/").content.decode()


def test_the_mirror_comparison_appears_in_place_when_mirroring_is_turned_on_elsewhere(browser: Client) -> None:
    from apps.endpoints import services as endpoint_services

    endpoint = factories.endpoint("ep1")
    for name in ("blue", "shadow"):
        factories.deployment(endpoint, name)
    endpoint = endpoint_services.traffic_set(endpoint=endpoint, traffic={"blue": 100, "shadow": 0})
    page = browser.get("/endpoints/ep1/monitoring/?range=6h").content.decode()
    live = page.split('<div id="mirror-live"')[1].split("</div>")[0]
    assert 'data-refresh-on="endpoint.traffic"' in live and "range=6h" in live
    assert "Mirror comparison" not in page

    endpoint_services.traffic_set(endpoint=endpoint, traffic={"blue": 100, "shadow": 0}, mirror_traffic={"shadow": 10})
    fragment = browser.get("/endpoints/ep1/monitoring/?range=6h", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="mirror-live")
    html = fragment.content.decode()
    assert 'id="mirror-live"' in html
    assert "Mirror comparison" in html and "Copies of live requests sent to <strong>shadow</strong>" in html
    assert "figures-data" not in html  # the charts are not drawn again for it
