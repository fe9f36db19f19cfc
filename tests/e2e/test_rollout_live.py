"""A rollout in a real browser against a real `studio up`: started from the Traffic tab's form, its panel charts
the target's and the baseline's requests, error rate and p99 latency side by side from real answers through the
gateway, live (pushed after each metrics drain; no reload), and keeps them while the panel redraws."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Session, Studio, blue_green, cli, confirm

pytestmark = pytest.mark.e2e

ENDPOINT = "ro-ep"
CHARTS_TIMEOUT_MS = 60_000  # metrics are drained every few seconds (gate interval, metrics beat)


@pytest.fixture
def served(studio: Studio, tmp_path: Path) -> Iterator[str]:
    """ro-ep with blue serving 100 % and green succeeded beside it (real instances)."""
    blue_green(studio, tmp_path, ENDPOINT, wait=True)
    cli(studio, "online-endpoint", "update", "-n", ENDPOINT, "--traffic", "blue=100")
    yield ENDPOINT
    cli(studio, "online-endpoint", "delete", "-n", ENDPOINT, "--yes")


def score(studio: Studio, count: int) -> set[str]:
    """Send `count` requests through the gateway; the deployments that answered."""
    shown = json.loads(cli(studio, "online-endpoint", "show", "-n", ENDPOINT).stdout)
    key = json.loads(cli(studio, "online-endpoint", "get-credentials", "-n", ENDPOINT).stdout)["primaryKey"]
    served_by = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            answer = client.post(shown["scoring_uri"], json={}, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            served_by.add(answer.headers["azureml-model-deployment"])
    return served_by


LEGENDS = "(id) => Array.from(document.querySelectorAll('#' + id + ' .legendtext')).map((e) => e.textContent)"
BOTH_DRAWN = """() => {
  const chart = document.getElementById('chart-requests');
  if (!chart || !chart.data) return false;
  const total = (name) => chart.data.filter((t) => t.name === name)
    .reduce((sum, t) => sum + t.y.reduce((a, y) => a + (y || 0), 0), 0);
  return total('green (target)') > 0 && total('baseline (blue)') > 0;
}"""


def test_a_rollout_started_in_the_browser_charts_the_target_and_the_baseline_side_by_side_live(
    session: Session, served: str
) -> None:
    page = session.page
    session.goto(f"/endpoints/{served}/traffic/")
    page.get_by_text("Start a rollout").click()
    page.get_by_label("Target deployment").select_option("green")
    page.get_by_label("Steps (% of live traffic to the target)").fill("50, 100")
    page.get_by_label("At least this long at each step").fill("10m")
    page.get_by_label("Answers before a step is judged").fill("100000")  # it stays at step 1 for the test
    page.locator("#rollout-start").click()
    page.locator("#rollout-heading", has_text="Rollout to green").wait_for()
    charts = page.locator("[id^=rollout-charts-]")
    charts.wait_for()
    page.evaluate("window.__sameDocument = true")
    page.evaluate("document.querySelector('[id^=rollout-charts-]').__kept = true")

    assert score(session.studio, 60) == {"blue", "green"}  # 50/50: both answer

    page.wait_for_function(BOTH_DRAWN, timeout=CHARTS_TIMEOUT_MS)
    for chart in ("chart-requests", "chart-error_rate", "chart-latency"):
        legends = page.evaluate(LEGENDS, chart)
        assert "green (target)" in legends and "baseline (blue)" in legends, (chart, legends)
    captions = page.locator("[id^=rollout-charts-] figcaption").all_inner_texts()
    assert captions == ["Requests per minute", "Error rate (5xx and 424)", "Request latency (p99)"]
    # The panel redraws at each gate evaluation (its answers so far); the charts are the same, kept, element.
    page.locator("#rollout-position", has_text="answers needed").filter(has_not_text="0 of 100000").wait_for(
        timeout=CHARTS_TIMEOUT_MS
    )
    assert page.evaluate("document.querySelector('[id^=rollout-charts-]').__kept === true")
    assert page.evaluate("window.__sameDocument === true")
    session.shot("rollout-charts")

    page.locator("#rollout-abort").click()
    confirm(page, "Abort the rollout and put traffic back as it was before it?")
    page.locator("#rollout-last", has_text="Aborted").wait_for()
    assert charts.count() == 0
