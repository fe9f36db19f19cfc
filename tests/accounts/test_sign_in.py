"""Sign-in protection: throttling per account and address, password rules, the Content-Security-Policy, the
OpenAPI schema and Swagger UI behind sign-in with assets served by the studio."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services

ROOT = Path(__file__).resolve().parents[2]


def test_failed_sign_ins_lock_that_account_from_that_address(people: dict[str | None, Any]) -> None:
    browser = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(4):
        wrong = browser.post("/login/", {"username": "reader-user", "password": "guess"})
        assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()
    fifth = browser.post("/login/", {"username": "reader-user", "password": "guess"})
    assert fifth.status_code == 429  # the limit (STUDIO_LOGIN_FAILURE_LIMIT, 5) is reached
    locked = browser.post("/login/", {"username": "reader-user", "password": "correct-horse-battery"})
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    # The API's token exchange (`studio login`) counts the same failures.
    api = APIClient(REMOTE_ADDR="10.0.0.1")
    answer = api.post("/api/v1/auth/login", {"username": "reader-user", "password": "correct-horse-battery"})
    assert answer.status_code == 429 and "too many failed sign-ins" in answer.json()["error"]["message"]
    # Another account from that address, and that account from another address, still sign in.
    other = browser.post("/login/", {"username": "operator-user", "password": "correct-horse-battery"})
    assert other.status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.0.0.2")
    assert (
        elsewhere.post("/login/", {"username": "reader-user", "password": "correct-horse-battery"}).status_code == 302
    )


def test_an_invitation_link_works_once_and_refuses_a_weak_password(people: dict[str | None, Any]) -> None:
    admin = Client()
    admin.force_login(people["admin"])
    page = admin.post("/users/", {"role": "operator", "note": "Bea"}).content.decode()
    link = re.search(r"http://testserver(/invite/[^<\s]+/)", page)
    assert link is not None, page
    guest = Client()
    weak = guest.post(link[1], {"username": "bea", "password": "password1", "password2": "password1"})
    assert weak.status_code == 400 and "This password is too common" in weak.content.decode()
    ok = guest.post(link[1], {"username": "bea", "password": "a-fine-long-phrase", "password2": "a-fine-long-phrase"})
    assert ok.status_code == 303
    assert guest.post("/login/", {"username": "bea", "password": "a-fine-long-phrase"}).status_code == 302
    assert "(Operator)" in guest.get("/endpoints/").content.decode()
    again = Client().get(link[1])
    assert again.status_code == 409 and "already used" in again.content.decode()
    # An Admin changes the role, then disables the user: no sign-in, no token.
    admin.post("/users/bea/", {"role": "reader"})
    assert "(Reader)" in guest.get("/endpoints/").content.decode()
    _, key = services.token_create(user=people["reader"].__class__.objects.get(username="bea"), name="t")
    admin.post("/users/bea/", {"active": "0"})
    assert guest.get("/endpoints/").status_code == 302  # signed out
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/online-endpoints").status_code == 401


def test_every_page_has_a_content_security_policy_without_inline_script(people: dict[str | None, Any]) -> None:
    browser = Client()
    browser.force_login(people["admin"])
    policy = browser.get("/endpoints/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "Content-Security-Policy" in Client().get("/login/")


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=|javascript:|hx-on", re.I)
    found = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        found += [f"{path.name}: {m[0]}" for m in inline.finditer(text)]
        found += [f"{path.name}: {m[0]}" for m in handler.finditer(text)]
    assert found == []


def test_the_api_schema_and_swagger_ui_need_sign_in_and_come_from_the_studio(people: dict[str | None, Any]) -> None:
    anonymous = Client()
    assert anonymous.get("/api/schema/").status_code == 401
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/login/")
    browser = Client()
    browser.force_login(people["reader"])
    assert browser.get("/api/schema/").status_code == 200
    page = browser.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all("src=" in tag for tag in scripts), scripts
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert browser.get("/api/docs/?script=").status_code == 200
