"""The studio in a real browser: sign in, lists and their empty states, accessibility, phone width."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Session, inject_axe

pytestmark = pytest.mark.e2e

PAGES = [
    ("endpoints", "/endpoints/", "Endpoints"),
    ("models", "/models/", "Models"),
    ("environments", "/environments/", "Environments"),
    ("monitoring", "/monitoring/", "Monitoring"),
    ("costs", "/costs/", "Costs"),
    ("model-register", "/models/new/", "Register a model"),
    ("environment-create", "/environments/new/", "Create an environment"),
    ("endpoint-create", "/endpoints/new/", "Create an endpoint"),
]


def test_sign_in_then_every_page_is_reachable_from_the_navigation(session: Session) -> None:
    page = session.page
    assert page.locator("#signed-in-user").inner_text() == "admin"
    for label in ("Models", "Environments", "Endpoints", "Monitoring", "Costs"):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
        assert page.get_by_role("heading", level=1).inner_text() == label
        assert page.get_by_role("link", name=label).get_attribute("aria-current") == "page"


@pytest.mark.parametrize(("name", "path", "heading"), PAGES)
def test_page_renders_without_serious_accessibility_violations(
    session: Session, name: str, path: str, heading: str
) -> None:
    session.goto(path)
    assert session.page.get_by_role("heading", level=1).inner_text() == heading
    session.shot(f"page-{name}")
    assert session.axe_serious() == []


def test_sign_in_page_is_accessible_and_refuses_a_wrong_password(studio, chromium) -> None:  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(studio.url + "/endpoints/")
    assert "/login/?next=/endpoints/" in page.url
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "Please enter a correct username and password" in page.get_by_role("alert").inner_text()
    from pathlib import Path

    shots = Path(__file__).parent / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "page-login.png"), full_page=True)
    inject_axe(page)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")] == []
    context.close()


def test_phone_width_keeps_navigation_and_content_usable(session: Session) -> None:
    page = session.page
    page.set_viewport_size({"width": 390, "height": 844})
    session.goto("/endpoints/")
    assert page.get_by_role("link", name="Create endpoint").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"
    session.shot("phone-endpoints")


def test_keyboard_reaches_the_navigation_and_skip_link(session: Session) -> None:
    page = session.page
    session.goto("/models/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Models"
