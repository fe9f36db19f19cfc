"""The browser studio's views through Django's test client: a real database, a signed-in user."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests import factories


@pytest.fixture
def user(db: None) -> Any:
    return factories.user("alice")


@pytest.fixture
def browser(user: Any) -> Client:
    """A client signed in as alice, with CSRF checks on as in a real browser."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/login/")  # sets the csrftoken cookie
    return client


def csrf(client: Client) -> dict[str, str]:
    """The CSRF header htmx sends (from <body hx-headers>), for POSTs of a test."""
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


@pytest.fixture
def post(browser: Client) -> Any:
    def send(url: str, data: dict[str, Any] | None = None, *, htmx: bool = False, **extra: Any) -> Any:
        headers = {**csrf(browser), **({"HTTP_HX_REQUEST": "true"} if htmx else {}), **extra}
        return browser.post(url, data or {}, **headers)

    return send
