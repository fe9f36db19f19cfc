"""A refused action is expected: the studio's log says so in one line (method, path, user, the role it needs),
never with a traceback, for a page, an API call and a signed-in user without a role."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient


def _lines(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if path in record.getMessage()]


def _assert_one_quiet_line(caplog: pytest.LogCaptureFixture, path: str, *words: str) -> None:
    records = _lines(caplog, path)
    assert len(records) == 1, caplog.text
    (record,) = records
    assert record.levelno == logging.WARNING and record.exc_info is None, caplog.text
    for word in words:
        assert word in record.getMessage(), (word, record.getMessage())
    assert "Traceback" not in caplog.text and "PermissionDenied" not in caplog.text, caplog.text


def test_a_refused_page_logs_one_line_naming_user_and_role(
    people: dict[str | None, Any], served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = Client()
    client.force_login(people["reader"])

    response = client.get("/endpoints/ep1/logs/")

    assert response.status_code == 403
    assert "needs the Operator role" in response.content.decode()
    _assert_one_quiet_line(caplog, "/endpoints/ep1/logs/", "refused GET", "reader-user", "needs the Operator role")


def test_a_refused_api_call_logs_one_line_naming_user_and_role(
    tokens: dict[str | None, str], served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {tokens['operator']}")

    response = client.post("/api/v1/online-endpoints", {"name": "ep2"}, format="json")

    assert response.status_code == 403
    _assert_one_quiet_line(caplog, "/api/v1/online-endpoints", "refused POST", "operator-user", "Deployer role")


def test_a_user_without_a_role_is_refused_in_one_line(
    people: dict[str | None, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = Client()
    client.force_login(people[None])

    response = client.get("/endpoints/")

    assert response.status_code == 403
    _assert_one_quiet_line(caplog, "/endpoints/", "refused GET", "nobody", "needs the Reader role")
