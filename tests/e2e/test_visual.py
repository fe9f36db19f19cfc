"""Every page and tab of the studio at 1440 px and 390 px: a screenshot of each under tests/e2e/screenshots/,
no element sticking out of its container, no text over other text (chart legends and axis titles included),
and axe with no serious or critical violation in light and in dark mode.

One endpoint set up through the CLI from YAML files gives every tab something to draw: `blue` serving,
`green` receiving mirrored copies, `broken` failed in init(), and requests through the gateway.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import AXE, SCREENSHOTS, STUDIO, Studio, _sign_in, confirm

pytestmark = pytest.mark.e2e

LAYOUT_JS = (Path(__file__).parent / "layout.js").read_text()
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
EP = "vis-ep"

SCORE_PY = """
import json, os

def init():
    print("init: ready", flush=True)

def run(raw_data):
    data = json.loads(raw_data)
    return {"echo": data, "deployment": os.environ.get("DEPLOYMENT", "")}
"""
BROKEN_PY = """
def init():
    raise RuntimeError(
        "model file /var/azureml-app/azureml-models/very/long/path/that/does/not/exist/model.pkl is missing"
    )

def run(raw_data):
    return raw_data
"""
DEPLOYMENT_YML = """\
name: {name}
endpoint_name: vis-ep
model:
  path: ./model/weights.bin
code_configuration:
  code: ./{code}/
  scoring_script: score.py
environment:
  image: python:3.11
environment_variables:
  DEPLOYMENT: {name}
instance_type: Standard_DS1_v2
instance_count: 1
"""
CONDA_YML = """\
# what the scoring script needs
name: vis-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip:
      - numpy
"""

PAGES = [
    ("endpoints", "/endpoints/"),
    ("endpoint-create", "/endpoints/new/"),
    ("models", "/models/"),
    ("model-register", "/models/new/"),
    ("environments", "/environments/"),
    ("environment-create", "/environments/new/"),
    ("environment-detail", "/environments/vis-env/"),
    ("monitoring", "/monitoring/"),
    ("costs", "/costs/"),
    ("styleguide", "/styleguide/"),
    ("not-found", "/no-such-page/"),
    ("tab-details", f"/endpoints/{EP}/"),
    ("tab-traffic", f"/endpoints/{EP}/traffic/"),
    ("tab-test", f"/endpoints/{EP}/test/"),
    ("tab-consume", f"/endpoints/{EP}/consume/"),
    ("tab-monitoring", f"/endpoints/{EP}/monitoring/"),
    ("tab-monitoring-7d", f"/endpoints/{EP}/monitoring/?range=7d&percentile=p99"),
    ("tab-logs", f"/endpoints/{EP}/logs/"),
    ("tab-events", f"/endpoints/{EP}/events/"),
    ("tab-costs", f"/endpoints/{EP}/costs/"),
    ("tab-audit", f"/endpoints/{EP}/audit/"),
    ("deployment-create", f"/endpoints/{EP}/deployments/new/"),
    ("audit", "/audit/"),
    ("users", "/users/"),
    ("account-tokens", "/account/tokens/"),
]


def _cli(studio: Studio, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["STUDIO_HOME"] = str(studio.home)
    done = subprocess.run(
        [STUDIO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    if check:
        assert done.returncode == 0, f"studio {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def endpoint(studio: Studio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vis-ep from YAML through the CLI: blue (all traffic), green (20 % mirrored), broken (failed in init)."""
    root = tmp_path_factory.mktemp("visual")
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(b"\x00weights")
    for folder, script in (("src", SCORE_PY), ("broken", BROKEN_PY)):
        (root / folder).mkdir()
        (root / folder / "score.py").write_text(script)
    (root / "endpoint.yml").write_text(f"name: {EP}\nauth_mode: key\ndescription: Screenshots of every tab\n")
    for name, code in (("blue", "src"), ("green", "src"), ("broken", "broken")):
        (root / f"{name}.yml").write_text(DEPLOYMENT_YML.format(name=name, code=code))
    (root / "conda.yml").write_text(CONDA_YML)
    _cli(studio, "environment", "create", "-n", "vis-env", "-i", "python:3.11", "--conda-file", "conda.yml", cwd=root)
    _cli(studio, "online-endpoint", "create", "-f", "endpoint.yml", cwd=root)
    _cli(studio, "online-deployment", "create", "-f", "blue.yml", "--all-traffic", cwd=root)
    _cli(studio, "online-deployment", "create", "-f", "green.yml", cwd=root)
    _cli(studio, "online-deployment", "create", "-f", "broken.yml", "--no-wait", cwd=root)
    _cli(studio, "online-endpoint", "update", "-n", EP, "--mirror-traffic", "green=20", cwd=root)
    key = _cli(studio, "online-endpoint", "get-credentials", "-n", EP, cwd=root)
    import json

    headers = {"Authorization": f"Bearer {json.loads(key.stdout)['primaryKey']}"}
    with httpx.Client(timeout=30) as client:
        for index in range(40):
            answer = client.post(f"{studio.gateway_url}/endpoints/{EP}/score", json={"data": [index]}, headers=headers)
            assert answer.status_code == 200, answer.text
    yield EP
    _cli(studio, "online-endpoint", "delete", "-n", EP, "--yes", cwd=root, check=False)


@pytest.fixture(scope="module")
def tabs(studio: Studio, chromium: Any) -> Iterator[dict[str, Any]]:
    """One signed-in page per width, reused for every page of the module."""
    pages: dict[str, Any] = {}
    contexts = []
    errors: list[str] = []
    for name, (width, height) in WIDTHS.items():
        context = chromium.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _sign_in(page, studio)
        pages[name] = page
        contexts.append(context)
    yield pages
    for context in contexts:
        context.close()
    assert not errors, f"script errors in the browser: {errors}"


def _axe(page: Any) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _settle(page: Any) -> None:
    """Wait until the charts a page has are drawn (Plotly adds .main-svg) and fonts are laid out."""
    page.wait_for_load_state("load")
    if page.locator("[data-charts]").count():
        page.wait_for_function(
            "() => !document.querySelector('[data-charts] #charts figure') || "
            "[...document.querySelectorAll('[data-charts] #charts .chart')].every(d => d.querySelector('.main-svg'))",
            timeout=15_000,
        )
    page.evaluate("document.fonts.ready")


def _wait_for_data(studio: Studio, page: Any) -> None:
    """The failed card and the charts need the reconcile and an ingest: wait for both, as a user would."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page.goto(f"{studio.url}/endpoints/{EP}/monitoring/")
        has_charts = page.locator("#chart-requests").count() > 0 or page.evaluate(
            "Object.keys(JSON.parse(document.getElementById('figures-data').textContent || '{}')).includes('requests')"
        )
        page.goto(f"{studio.url}/endpoints/{EP}/")
        failed = page.locator(".failure .reason").count() > 0
        if has_charts and failed:
            return
        page.wait_for_timeout(2000)
    raise AssertionError("the failed deployment or the charts did not appear within 120 s")


def test_every_page_and_tab_at_both_widths_is_laid_out_cleanly_and_accessible_in_light_and_dark(
    studio: Studio, endpoint: str, tabs: dict[str, Any]
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    _wait_for_data(studio, tabs["desktop"])
    problems: dict[str, list[str]] = {}
    for width_name, page in tabs.items():
        for name, path in PAGES:
            page.emulate_media(color_scheme="light")
            page.goto(studio.url + path)
            _settle(page)
            found = page.evaluate(LAYOUT_JS)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width_name}.png"), full_page=True)
            if width_name == "desktop":
                found += [f"axe light: {v}" for v in _axe(page)]
                page.emulate_media(color_scheme="dark")
                page.wait_for_timeout(50)
                found += [f"axe dark: {v}" for v in _axe(page)]
                if name in ("tab-details", "tab-monitoring", "styleguide"):
                    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width_name}-dark.png"), full_page=True)
            if found:
                problems[f"{name} at {width_name}"] = found
    report = "\n".join(f"{where}: {problem}" for where, found in problems.items() for problem in found)
    (SCREENSHOTS / "layout-problems.txt").write_text(report)
    assert not problems, report


def test_failed_card_leads_to_the_logs_and_shows_the_whole_message(
    studio: Studio, endpoint: str, tabs: dict[str, Any]
) -> None:
    page = tabs["desktop"]
    page.emulate_media(color_scheme="light")
    _wait_for_data(studio, page)
    failure = page.locator(".failure")
    assert failure.locator(".reason").inner_text() == "UserScriptInitFailed"
    details = failure.locator("details pre")
    assert not details.is_visible()
    failure.get_by_text("Show details").click()
    assert "does/not/exist/model.pkl" in details.inner_text()
    # The full message scrolls inside the card rather than running past its border.
    card = page.locator("article.card", has=failure)
    assert details.bounding_box()["width"] <= card.bounding_box()["width"]
    failure.get_by_role("link", name="View logs").click()
    page.wait_for_url("**/logs/?deployment=broken**container=inference-server**")
    assert page.get_by_label("Deployment").input_value() == "broken"
    assert page.get_by_label("Container").input_value() == "inference-server"
    page.locator("#logs-content").filter(has_text="RuntimeError").wait_for()


def test_the_confirmation_is_the_studios_dialog_and_cancel_keeps_everything(
    studio: Studio, endpoint: str, tabs: dict[str, Any]
) -> None:
    page = tabs["desktop"]
    page.goto(f"{studio.url}/endpoints/{EP}/")
    page.get_by_role("button", name="Delete green").click()
    dialog = page.get_by_role("dialog", name="Delete deployment")
    assert "Delete deployment green? Its instances stop." in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert not page.evaluate("document.getElementById('confirm-dialog').open")
    assert page.get_by_role("heading", name="green", exact=True).is_visible()
    # OK goes ahead: the secondary key is replaced (harmless to the other tests, which use the primary).
    page.goto(f"{studio.url}/endpoints/{EP}/consume/")
    page.get_by_role("button", name="Show keys").click()
    old = page.locator("#secondary-key").inner_text()
    page.get_by_role("button", name="Regenerate secondary").click()
    confirm(page, "Regenerate the secondary key? Clients using it stop working.")
    page.locator("#keys-regenerated").wait_for()
    assert page.locator("#secondary-key").inner_text() != old
