"""Roles in a real browser: an Admin invites a Reader from the Users page; the Reader sees the controls of
actions their role lacks disabled with the role they need, and the Traffic tab's fields are disabled and its
script keeps Apply disabled even at a total of 100; the Admin's Apply is enabled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOTS, Session, Studio, blue_green, cli, inject_axe

pytestmark = pytest.mark.e2e

ENDPOINT = "roles-ep"
READER_PASSWORD = "reader-password-e2e-1"


@pytest.fixture
def endpoint(studio: Studio, tmp_path: Path) -> Any:
    """roles-ep with blue taking all live traffic and green none (their instances need not be up for the split)."""
    blue_green(studio, tmp_path, ENDPOINT, wait=False)
    cli(studio, "online-endpoint", "update", "-n", ENDPOINT, "--traffic", "blue=100")
    yield ENDPOINT
    cli(studio, "online-endpoint", "delete", "-n", ENDPOINT, "--yes")


def _reader_tab(session: Session, chromium: Any) -> Any:
    """A new browser tab signed in as a Reader the Admin invited through the Users page."""
    admin = session.page
    session.goto("/users/")
    admin.locator("#invite-role").select_option("reader")
    admin.get_by_role("button", name="Create invitation link").click()
    link = admin.locator("#invite-link code").inner_text()
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(link)
    page.get_by_label("Username").fill("rita-reader")
    page.get_by_label("Password", exact=True).fill(READER_PASSWORD)
    page.get_by_label("Password again").fill(READER_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/login/**")
    page.get_by_label("Username").fill("rita-reader")
    page.get_by_label("Password").fill(READER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(session.studio.url + "/endpoints/")
    return page


def test_a_reader_sees_disabled_controls_naming_the_role_and_an_admin_enabled_ones(
    session: Session, chromium: Any, endpoint: str
) -> None:
    page = _reader_tab(session, chromium)
    assert page.locator("#signed-in-role").inner_text() == "(Reader)"
    create = page.get_by_role("link", name="Create endpoint")
    assert create.get_attribute("aria-disabled") == "true" and create.get_attribute("href") is None
    assert create.get_attribute("title") == "needs Deployer (you are Reader)"

    page.goto(f"{session.studio.url}/endpoints/{endpoint}/traffic/")
    apply = page.locator("#traffic-apply")
    assert apply.is_disabled() and apply.get_attribute("title") == "needs Operator (you are Reader)"
    # The boxes, sliders and mirror fields cannot be changed either (their fieldsets are disabled and titled).
    blue = page.locator('[data-traffic-number="blue"]')
    assert blue.is_disabled() and page.locator("#traffic-mirror-percent, [name=mirror_percent]").first.is_disabled()
    assert page.locator("#traffic-live-fields").get_attribute("title") == "needs Operator (you are Reader)"
    # The script that enables Apply at a total of 100 leaves a role's refusal alone.
    blue.evaluate("box => { box.value = '100'; box.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert page.locator("#traffic-total").inner_text() == "100"
    assert apply.is_disabled()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "roles-reader-traffic.png"), full_page=True)

    page.goto(f"{session.studio.url}/endpoints/{endpoint}/")
    delete = page.locator("#endpoint-delete")
    assert delete.is_disabled() and delete.get_attribute("title") == "needs Admin (you are Reader)"
    logs_tab = page.get_by_role("navigation", name="Endpoint tabs").get_by_role("link", name="Logs")
    assert logs_tab.get_attribute("title") == "needs Operator (you are Reader)"
    page.screenshot(path=str(SCREENSHOTS / "roles-reader-details.png"), full_page=True)
    inject_axe(page)  # disabled controls stay accessible: named, focusable where they are links
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")] == []
    page.context.close()

    admin = session.page
    session.goto(f"/endpoints/{endpoint}/traffic/")
    admin.locator('[data-traffic-number="blue"]').fill("100")
    admin.locator('[data-traffic-number="blue"]').dispatch_event("input")
    assert admin.locator("#traffic-apply").is_enabled()
    assert admin.locator("#traffic-apply").get_attribute("title") is None
    session.goto(f"/endpoints/{endpoint}/")
    assert admin.locator("#endpoint-delete").is_enabled()
