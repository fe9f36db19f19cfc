"""The favicon: every page links the SVG in static/, and /favicon.ico (which browsers ask for anyway) answers
with it, so loading a page logs no "Not Found: /favicon.ico"."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

SVG = (Path(__file__).resolve().parents[2] / "static" / "img" / "favicon.svg").read_bytes()


def _body(response: object) -> bytes:
    streamed = getattr(response, "streaming_content", None)
    return b"".join(streamed) if streamed is not None else response.content  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_pages_link_the_svg_favicon_and_favicon_ico_answers_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = Client()

    page = client.get("/login/").content.decode()
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert link is not None, page[:600]
    linked = client.get(link.group(1))
    ico = client.get("/favicon.ico")

    assert (linked.status_code, linked["Content-Type"], _body(linked)) == (200, "image/svg+xml", SVG)
    assert (ico.status_code, ico["Content-Type"], _body(ico)) == (200, "image/svg+xml", SVG)
    assert "img-src 'self'" in ico["Content-Security-Policy"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.django_db
def test_favicon_ico_answers_a_signed_in_user_without_a_role(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = Client()
    client.force_login(get_user_model().objects.create_user(username="nobody", password="correct-horse-battery"))

    ico = client.get("/favicon.ico")

    assert (ico.status_code, _body(ico)) == (200, SVG)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
