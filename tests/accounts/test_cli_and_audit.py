"""The CLI acts with its user's token: `studio login`, each role allowed or refused with the role it needs, tokens
revoked or expired; and the audit trail shows a change made through each of the UI, the API and the CLI."""

from __future__ import annotations

import io
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import PersonalToken
from apps.endpoints import services
from apps.endpoints.models import Deployment
from cli.main import main
from tests.accounts.conftest import LABEL, RANK, ROLES_AND_NONE

pytestmark = pytest.mark.django_db(transaction=True)

CLI_ACTIONS = [
    (("online-endpoint", "show", "-n", "ep1"), "reader"),
    (("online-endpoint", "get-credentials", "-n", "ep1"), "operator"),
    (("online-endpoint", "update", "-n", "ep1", "--set", "description=from the CLI"), "deployer"),
    (("online-endpoint", "regenerate-keys", "-n", "ep1", "--key-type", "secondary"), "admin"),
]


@pytest.fixture
def cli(live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `studio ...` in this process against the live studio; (exit code, stdout, stderr)."""
    for key in ("STUDIO_URL", "STUDIO_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "cli-home"))

    def run(*args: str, token: str | None = None, stdin: str = "") -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        url = ("--studio-url", live_server.url)
        code = main([*args, *url, *(("--token", token) if token else ())])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_the_cli_acts_with_each_users_role_and_names_the_role_it_lacks(
    cli: Any, tokens: dict[str | None, str], served: Any
) -> None:
    for argv, needed in CLI_ACTIONS:
        for role in ROLES_AND_NONE:
            code, out, err = cli(*argv, token=tokens[role])
            if RANK[role] >= RANK[needed]:
                assert code == 0, (argv, role, err)
            else:
                assert code == 1, (argv, role, out)
                lacking = LABEL[needed] if role else "Reader"
                assert f"needs the {lacking} role" in err and "Traceback" not in err, (argv, role, err)


def test_studio_login_stores_a_personal_token_that_can_be_revoked_or_expire(
    cli: Any, people: dict[str | None, Any], served: Any, tmp_path: Path
) -> None:
    wrong = cli("login", "-u", "operator-user", "--password-stdin", stdin="not-the-password\n")
    assert wrong[0] == 1 and "wrong username or password" in wrong[2], wrong
    code, out, err = cli(
        "login", "-u", "operator-user", "--password-stdin", "--token-name", "laptop", stdin="correct-horse-battery\n"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["user"] == "operator-user" and shown["role"] == "Operator" and shown["token_name"] == "laptop"
    config = tmp_path / "cli-home" / "cli.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text())["token"].startswith("stu_") and "token" not in shown

    assert cli("online-endpoint", "get-credentials", "-n", "ep1")[0] == 0  # the stored token, the user's role
    refused = cli("online-endpoint", "delete", "-n", "ep1", "--yes")
    assert refused[0] == 1 and "needs the Admin role (you are Operator" in refused[2]

    # The user's API tokens page lists it by name and revokes it; the CLI then says so.
    page = Client()
    page.force_login(people["operator"])
    listed = page.get("/account/tokens/").content.decode()
    assert "laptop" in listed
    row = PersonalToken.objects.get(name="laptop")
    assert page.post(f"/account/tokens/{row.pk}/revoke/").status_code == 303
    code, _, err = cli("online-endpoint", "list")
    assert code == 1 and "the API token 'laptop' was revoked" in err, err

    # A token with an expiry stops working after it.
    made = page.post("/account/tokens/", {"name": "ci", "expires_in_days": "1"})
    key = made.content.decode().split("data-copy-source>")[1].split("<")[0]
    assert cli("online-endpoint", "list", token=key)[0] == 0
    PersonalToken.objects.filter(name="ci").update(expires_at=timezone.now() - timedelta(seconds=1))
    code, _, err = cli("online-endpoint", "list", token=key)
    assert code == 1 and "the API token 'ci' expired" in err, err


def test_the_audit_trail_shows_a_change_through_the_ui_the_api_and_the_cli_with_its_user(
    cli: Any, people: dict[str | None, Any], tokens: dict[str | None, str], served: Any
) -> None:
    ui = Client()
    ui.force_login(people["operator"])
    assert ui.post("/endpoints/ep1/traffic/", {"traffic_blue": "100"}).status_code == 303
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {tokens['deployer']}")
    assert api.patch("/api/v1/online-endpoints/ep1", {"description": "via API"}, format="json").status_code == 200
    code, _, err = cli("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=0", token=tokens["admin"])
    assert code == 0, err

    rows = api.get("/api/v1/audit", {"endpoint": "ep1"}).json()["results"]
    seen = [(r["channel"], r["user"], r["action"]) for r in rows]
    assert ("ui", "operator-user", "traffic.set") in seen
    assert ("api", "deployer-user", "endpoint.update") in seen
    assert ("cli", "admin-user", "traffic.set") in seen
    ui_row = next(r for r in rows if r["channel"] == "ui")
    assert ui_row["before"]["traffic"] == {"blue": 0} and ui_row["after"]["traffic"] == {"blue": 100}
    assert ui_row["address"] == "127.0.0.1"
    api_row = next(r for r in rows if r["channel"] == "api")
    assert api_row["before"] == {"description": ""} and api_row["after"] == {"description": "via API"}

    # Filterable, on the studio-wide page and the endpoint's Audit tab, and exported as JSON lines.
    only_cli = api.get("/api/v1/audit", {"channel": "cli"}).json()["results"]
    assert {r["user"] for r in only_cli} == {"admin-user"}
    page = ui.get("/audit/", {"user": "deployer-user"}).content.decode()
    assert "via API" in page and "operator-user" not in page.split('id="audit-table"')[1]
    assert "operator-user" in ui.get("/endpoints/ep1/audit/").content.decode()
    export = b"".join(ui.get("/audit/export.jsonl", {"endpoint": "ep1"}).streaming_content).decode()
    lines = [json.loads(line) for line in export.splitlines()]
    assert [(x["channel"], x["user"]) for x in lines if x["action"] in ("traffic.set", "endpoint.update")] == [
        ("ui", "operator-user"),
        ("api", "deployer-user"),
        ("cli", "admin-user"),
    ]
    # The Traffic tab's history is the same entries.
    history = api.get("/api/v1/online-endpoints/ep1/traffic-changes").json()["results"]
    assert [(h["user"], h["traffic_after"]) for h in history] == [
        ("admin-user", {"blue": 0}),
        ("operator-user", {"blue": 100}),
    ]


def test_online_deployment_show_hides_variable_values_from_a_reader(
    cli: Any, tokens: dict[str | None, str], served: Any
) -> None:
    blue = Deployment.objects.get(endpoint=served, name="blue")
    services.deployment_update(deployment=blue, changes={"environment_variables": {"DB_PASSWORD": "hunter2"}})
    code, out, err = cli("online-deployment", "show", "-n", "blue", "-e", "ep1", token=tokens["reader"])
    assert code == 0, err
    shown = json.loads(out)
    assert shown["environment_variables"] == {"DB_PASSWORD": None} and "hunter2" not in out
    assert shown["environment_variables_hidden"] == (
        "values hidden: secrets.read needs the Operator role (you are Reader)"
    )
    code, out, err = cli("online-deployment", "show", "-n", "blue", "-e", "ep1", token=tokens["operator"])
    assert code == 0, err
    assert json.loads(out)["environment_variables"] == {"DB_PASSWORD": "hunter2"}
