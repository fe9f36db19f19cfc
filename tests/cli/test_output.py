"""Tables fit the terminal: long cells are cut with an ellipsis, the full text stays in `-o json`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.endpoints.models import Deployment
from cli.output import render
from tests import factories
from tests.cli.conftest import Result

Studio = Callable[..., Result]


def test_a_table_cuts_the_widest_cells_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    rows = [
        {"name": "blue", "provisioning_state": "Failed", "message": "Traceback (most recent call last):\n" + "x" * 500},
        {"name": "green", "provisioning_state": "Succeeded", "message": ""},
    ]
    lines = render(rows, "table").splitlines()
    assert lines[0].split() == ["Name", "ProvisioningState", "Message"]
    assert all(len(line) <= 60 for line in lines), lines
    assert lines[2] == "blue   Failed             Traceback (most recent call last)…"
    assert lines[3].rstrip() == "green  Succeeded"


def test_a_table_that_fits_is_left_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert render([{"name": "blue", "state": "Succeeded"}], "table").splitlines() == [
        "Name  State",
        "----  ---------",
        "blue  Succeeded",
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deployment_list_table_fits_80_columns_and_json_keeps_the_whole_message(studio: Studio) -> None:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    long_message = "the scoring script's init() raised: KeyError: 'MODEL_PATH'\n" + "log line\n" * 300
    Deployment.objects.filter(name="blue").update(state="Failed", reason="UserScriptInitFailed", message=long_message)
    table = studio("online-deployment", "list", "-e", "ep1", "-o", "table", env={"COLUMNS": "80"})
    assert table.code == 0, table.stderr
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
    assert table.stdout.splitlines()[2].split()[:3] == ["blue", "Failed", "UserScriptIn…"]
    shown = studio("online-deployment", "list", "-e", "ep1", "-o", "json")
    assert shown.json()[0]["message"] == long_message
