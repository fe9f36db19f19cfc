"""The whole flow in a real browser against a real `studio up` (web, worker, gateway, runtime instances):
register a model and an environment, create an endpoint and `blue` with the wizard, score through
Test, add `green` and `shadow`, slide to 90/10, mirror 10 % to `shadow`, see live and mirrored
traffic in the charts, read both containers' logs, regenerate a key, revert a traffic change.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import STUDIO, Session, Studio, confirm

pytestmark = pytest.mark.e2e

READY_TIMEOUT_MS = 240_000
SCORE_PY = """
import json, os

def init():
    print("init: model dir", os.environ.get("AZUREML_MODEL_DIR"), flush=True)

def run(raw_data):
    return {"echo": json.loads(raw_data)}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "weights.bin").write_bytes(b"\x00weights")
    (tmp_path / "score.py").write_text(SCORE_PY)
    return tmp_path


@pytest.fixture
def cleanup(studio: Studio) -> Iterator[list[str]]:
    """Endpoints to delete at the end (the CLI waits until their instances have stopped)."""
    names: list[str] = []
    yield names
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["STUDIO_HOME"] = str(studio.home)
    for name in names:
        subprocess.run([STUDIO, "online-endpoint", "delete", "-n", name, "--yes"], env=env, timeout=180, check=False)


def _wait_succeeded(session: Session, deployment: str) -> None:
    card = session.page.locator("article.card", has=session.page.get_by_role("heading", name=deployment, exact=True))
    badge = card.locator("[data-state-of]")
    badge.filter(has_text="Succeeded").wait_for(timeout=READY_TIMEOUT_MS)


def _add_deployment(session: Session, files: Path, endpoint: str, name: str) -> None:
    page = session.page
    session.goto(f"/endpoints/{endpoint}/deployments/new/")
    page.get_by_label("Deployment name").fill(name)
    page.get_by_label("Code").set_input_files(str(files / "score.py"))
    page.get_by_label("Instance type").select_option("Standard_DS1_v2")
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(f"{session.studio.url}/endpoints/{endpoint}/")


def test_whole_flow_in_the_browser(session: Session, files: Path, cleanup: list[str]) -> None:
    page = session.page
    url = session.studio.url

    # Register a model (version 1) and an environment.
    session.goto("/models/new/")
    page.get_by_label("Name").fill("flow-model")
    page.get_by_label("Files").set_input_files(str(files / "weights.bin"))
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(url + "/models/flow-model/")
    assert "Registered model flow-model version 1." in page.locator("#messages").inner_text()
    session.shot("model-detail")
    session.goto("/environments/new/")
    page.get_by_label("Name").fill("flow-env")
    page.get_by_label("Image").fill("python:3.11")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(url + "/environments/flow-env/")
    session.shot("environment-detail")

    # The wizard: endpoint, deployment (with its price and quota), review, create.
    session.goto("/endpoints/new/")
    page.get_by_label("Endpoint name").fill("flow-ep")
    page.get_by_role("button", name="Next: deployment").click()
    page.get_by_label("Deployment name").fill("blue")
    page.get_by_label("Model").select_option("azureml:flow-model:1")
    page.get_by_label("Code").set_input_files(str(files / "score.py"))
    page.get_by_label("Environment").select_option("azureml:flow-env:1")
    page.get_by_label("Instance type").select_option("Standard_DS2_v2")
    # The estimate is the server's (apps.costs.selectors), fetched again as the size changes.
    estimate = page.locator("[data-estimate-price]", has_text="Standard_DS2_v2")
    estimate.wait_for()
    assert "1 × Standard_DS2_v2 at 0.1460 USD/h = 3.50 USD a day, about 106.58 USD a month" == estimate.inner_text()
    assert page.locator("[data-estimate-quota]").inner_text().startswith("needs 4 cores (ceil(1.2 × 1) × 2 vCPUs)")
    session.shot("wizard-deployment")
    page.get_by_role("button", name="Next: review").click()
    review = page.locator("#wizard-review").inner_text()
    assert "flow-ep" in review and "blue" in review and "score.py" in review and "100 % to blue" in review
    session.shot("wizard-review")
    assert session.axe_serious() == []
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(url + "/endpoints/flow-ep/")
    cleanup.append("flow-ep")
    # Progress shows without a reload: the marker set now must survive until the badge says Succeeded.
    page.evaluate("window.__sameDocument = true")
    _wait_succeeded(session, "blue")
    assert page.evaluate("window.__sameDocument === true")
    assert "Ready" in page.locator("ol.stages").first.inner_text()
    session.shot("endpoint-details")
    assert session.axe_serious() == []
    session.goto("/environments/flow-env/")
    assert page.locator("pre.log").inner_text().strip(), "the environment's build log is shown once it was built"
    session.goto("/models/flow-model/")
    assert "flow-ep / blue" in page.locator("#content").inner_text()  # the deployments that use version 1
    session.goto("/endpoints/flow-ep/")

    # Score through the Test tab.
    page.get_by_role("link", name="Test", exact=True).click()
    page.get_by_label("Body").fill('{"data": [[1, 2, 3]]}')
    page.get_by_role("button", name="Send").click()
    page.locator("#test-status").wait_for()
    assert page.locator("#test-status").inner_text() == "200"
    assert page.locator("#test-deployment").inner_text() == "blue"
    assert page.locator("#test-request-id").inner_text() not in ("", "—")
    assert '"echo"' in page.locator("#test-body").inner_text()
    session.shot("endpoint-test")

    # Add green and shadow (no traffic yet); both become ready while the page is open. A second tab
    # on the endpoints list (which does not poll) sees the new states pushed over the websocket.
    other = page.context.new_page()
    other.on("console", lambda msg: session.console_errors.append(msg.text) if msg.type == "error" else None)
    other.goto(url + "/endpoints/")
    other.evaluate("window.__sameDocument = true")
    _add_deployment(session, files, "flow-ep", "green")
    _add_deployment(session, files, "flow-ep", "shadow")
    for name in ("green", "shadow"):
        _wait_succeeded(session, name)
    listed = other.locator("#endpoints-table tbody tr", has_text="flow-ep")
    listed.filter(has_text="green Succeeded").wait_for(timeout=30_000)
    listed.filter(has_text="shadow Succeeded").wait_for(timeout=30_000)
    assert other.evaluate("window.__sameDocument === true")
    other.close()

    # Slide green to 10: blue follows to 90, the total stays 100; mirror 10 % to shadow; apply.
    page.get_by_role("link", name="Traffic", exact=True).click()
    page.locator('[data-traffic-slider="green"]').fill("10")
    assert page.locator('[data-traffic-number="blue"]').input_value() == "90"
    assert page.locator('[data-traffic-number="shadow"]').input_value() == "0"
    assert page.locator("#traffic-total").inner_text() == "100"
    # The sliders work from the keyboard too: one step right on green takes one from blue.
    page.locator('[data-traffic-slider="green"]').press("ArrowRight")
    assert page.locator('[data-traffic-number="green"]').input_value() == "11"
    assert page.locator('[data-traffic-number="blue"]').input_value() == "89"
    page.locator('[data-traffic-slider="green"]').press("ArrowLeft")
    assert page.locator('[data-traffic-number="blue"]').input_value() == "90"
    page.get_by_label("Mirror a copy of live traffic").check()
    page.get_by_label("Mirror to").select_option("shadow")
    page.get_by_label("Mirror percent").fill("10")
    assert "moving traffic changes no bill" in page.locator("[data-cost-effect]").inner_text()
    # The server's cost line follows the split: green and shadow no longer idle once they get traffic.
    page.locator("[data-cost-effect]", has_text="After this change").wait_for(state="hidden")
    session.shot("endpoint-traffic-before-apply")
    page.get_by_role("button", name="Apply").click()
    # Apply asks first, showing the change and its cost.
    diff = page.locator("#traffic-diff").inner_text()
    assert "blue 100 → 90" in diff and "green 0 → 10" in diff and "mirror off → to shadow 10 %" in diff
    page.locator("#traffic-confirm-apply").click()
    page.locator("#messages").filter(has_text="Traffic applied.").wait_for()
    newest = page.locator("#traffic-history tbody tr").first
    assert "blue=90 green=10 shadow=0" in newest.inner_text() and "mirror shadow=10" in newest.inner_text()
    assert "admin" in newest.inner_text()
    session.shot("endpoint-traffic")
    assert session.axe_serious() == []

    # Keys: hidden until shown; score with the primary key so live and mirrored traffic flow.
    page.get_by_role("link", name="Consume", exact=True).click()
    assert page.locator("#primary-key").count() == 0
    page.get_by_role("button", name="Show keys").click()
    key = page.locator("#primary-key").inner_text()
    scoring_uri = page.locator("#scoring-uri").inner_text()
    session.shot("endpoint-consume")
    served: dict[str, int] = {}
    with httpx.Client(timeout=30) as client:
        for index in range(60):
            answer = client.post(scoring_uri, json={"data": [[index]]}, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            name = answer.headers["azureml-model-deployment"]
            served[name] = served.get(name, 0) + 1
    assert set(served) <= {"blue", "green"} and served.get("blue", 0) > served.get("green", 0)

    # Regenerate the primary key: the new one is shown and the old one stops working.
    page.get_by_role("button", name="Regenerate primary").click()
    confirm(page, "Regenerate the primary key? Clients using it stop working.")
    page.locator("#keys-regenerated").wait_for()
    new_key = page.locator("#primary-key").inner_text()
    assert new_key != key
    page.wait_for_timeout(1500)  # gateways pick the change up within a second
    refused = httpx.post(scoring_uri, json={"data": [[0]]}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert refused.status_code == 401

    # Monitoring: live and mirrored traffic appear in the charts without a reload.
    page.get_by_role("link", name="Monitoring", exact=True).last.click()
    page.locator("#chart-requests").wait_for(timeout=60_000)
    page.locator("#chart-mirrored_requests").wait_for(timeout=60_000)
    traces = "id => document.getElementById(id).data.map(trace => trace.name)"
    live_names = " ".join(page.evaluate(traces, "chart-requests"))
    assert "blue" in live_names and "shadow" not in live_names
    assert "shadow" in " ".join(page.evaluate(traces, "chart-mirrored_requests"))
    session.shot("endpoint-monitoring")

    # Logs of both containers of blue.
    page.get_by_role("link", name="Logs", exact=True).click()
    page.get_by_label("Deployment").select_option("blue")
    page.get_by_label("Container").select_option("inference-server")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**container=inference-server**")  # htmx swapped the panel and pushed its URL
    page.locator("#logs-content").filter(has_text="init: model dir").wait_for()
    page.get_by_label("Container").select_option("storage-initializer")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**container=storage-initializer**")
    assert page.locator("#logs-content").inner_text().strip() not in ("", "(no lines)")
    page.get_by_label("Follow live").check()
    page.wait_for_function(
        "() => document.querySelector('[data-logs-panel]').dataset.followUpdates >= 1", timeout=15_000
    )
    session.shot("endpoint-logs")

    # Events: the timeline with stages; Costs: the rate at the current size.
    page.get_by_role("link", name="Events", exact=True).click()
    assert "Creating" in page.locator("#events-table").inner_text()
    session.shot("endpoint-events")
    page.get_by_role("link", name="Costs", exact=True).last.click()
    assert "blue" in page.locator("#cost-rates").inner_text()
    page.locator("#chart-cost").wait_for()  # the accrued cost per day, stacked by deployment
    session.shot("endpoint-costs")

    # Revert the 90/10 change: back to all traffic on blue and no mirror.
    page.get_by_role("link", name="Traffic", exact=True).click()
    page.locator("#traffic-history tbody tr").first.get_by_role("button", name="Revert").click()
    page.locator("#messages").filter(has_text="Traffic reverted.").wait_for()
    assert page.locator('[data-traffic-number="blue"]').input_value() == "100"
    assert page.locator('[data-traffic-number="green"]').input_value() == "0"
    assert not page.get_by_label("Mirror a copy of live traffic").is_checked()

    # Every tab is free of serious accessibility violations.
    for tab in ("traffic/", "test/", "consume/", "monitoring/", "logs/", "events/", "costs/", "deployments/new/"):
        session.goto(f"/endpoints/flow-ep/{tab}")
        assert session.axe_serious() == [], tab

    # Deleting a deployment that takes traffic is refused with the reason; copy buttons copy.
    session.goto("/endpoints/flow-ep/")
    page.get_by_role("button", name="Delete blue").click()
    confirm(page, "Delete deployment blue? Its instances stop.")
    assert "takes 100 % of the live traffic" in page.locator("#content [role=alert]").first.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    session.goto("/endpoints/flow-ep/consume/")
    page.get_by_role("button", name="Copy curl").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith('curl -X POST "' + scoring_uri)

    # At phone width every tab still fits: nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    for tab in ("", "traffic/", "test/", "consume/", "monitoring/", "logs/", "events/", "costs/"):
        session.goto(f"/endpoints/flow-ep/{tab}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/endpoints/flow-ep/{tab} scrolls sideways at phone width ({width} px)"
    session.goto("/endpoints/flow-ep/traffic/")
    session.shot("phone-endpoint-traffic")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The endpoints list shows state, traffic and cost per day.
    session.goto("/endpoints/")
    row = page.locator("#endpoints-table tbody tr", has_text="flow-ep")
    assert "blue 100 %" in row.inner_text() and "USD" in row.inner_text()
    session.shot("endpoints-list")

    # Delete the endpoint from its Details tab: it goes, with its deployments and their instances.
    session.goto("/endpoints/flow-ep/")
    page.get_by_role("button", name="Delete endpoint flow-ep").click()
    confirm(page, "Delete online endpoint flow-ep and all its deployments?")
    page.wait_for_url(url + "/endpoints/")
    assert "Deleting online endpoint flow-ep and its deployments." in page.locator("#messages").inner_text()
    for _ in range(60):
        session.goto("/endpoints/")
        if page.locator("#endpoints-empty").count():
            break
        page.wait_for_timeout(1000)
    assert page.locator("#endpoints-empty").count() == 1, "the endpoint was not deleted within a minute"
