"""How the CLI finds the studio, reports errors (one line, exit 1, never a traceback) and prints results."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factories
from tests.cli.conftest import Result, assert_error, run

Studio = Callable[..., Result]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")}
    return {**env, "STUDIO_HOME": str(tmp_path / "home"), **extra}


def test_unreachable_studio_says_where_and_how_to_start_it(tmp_path: Path) -> None:
    port = closed_port()
    result = run(
        ("online-endpoint", "list"), bare_env(tmp_path, STUDIO_URL=f"http://127.0.0.1:{port}", STUDIO_TOKEN="t")
    )
    assert_error(result, f"the studio is not reachable at http://127.0.0.1:{port} (ConnectError")
    assert "start it with `studio up`" in result.stderr


def test_missing_token_says_to_run_studio_up(tmp_path: Path) -> None:
    result = run(("online-endpoint", "list"), bare_env(tmp_path))
    assert_error(result, f"no API token: run `studio up` (it writes {tmp_path / 'home' / 'cli.json'})")


def test_usage_mistakes_are_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run(("online-endpoint", "show"), bare_env(tmp_path, STUDIO_TOKEN="t"))
    assert_error(result, "studio online-endpoint show: the following arguments are required: -n/--name")
    assert_error(run(("online-endpoint", "fly"), bare_env(tmp_path)), "studio online-endpoint: argument <verb>")


@pytest.mark.django_db(transaction=True)
def test_config_file_written_by_studio_up_is_used(live_server: object, tmp_path: Path) -> None:
    from rest_framework.authtoken.models import Token

    factories.endpoint("ep1")
    token, _ = Token.objects.get_or_create(user=factories.user())
    home = tmp_path / "home"
    home.mkdir()
    (home / "cli.json").write_text(json.dumps({"url": live_server.url, "token": token.key}))  # type: ignore[attr-defined]
    result = run(("online-endpoint", "list", "--query", "[].name"), bare_env(tmp_path))
    assert result.code == 0, result.stderr
    assert result.json() == ["ep1"]
    refused = run(("online-endpoint", "list"), bare_env(tmp_path, STUDIO_TOKEN="not-a-token"))
    assert_error(refused, f"the studio at {live_server.url} refused the API token from STUDIO_TOKEN")  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
def test_output_formats_and_query(studio: Studio) -> None:
    factories.endpoint("ep1", tags={"team": "fraud"})
    shown = studio("online-endpoint", "show", "-n", "ep1", "-o", "yaml", "--query", "{name: name, tags: tags}")
    assert shown.stdout == "name: ep1\ntags:\n  team: fraud\n"
    tsv = studio("online-endpoint", "show", "-n", "ep1", "-o", "tsv", "--query", "[name, auth_mode]")
    assert tsv.stdout == "ep1\nkey\n"  # as az: each item of a list on its own line
    rows = studio("online-endpoint", "list", "-o", "tsv", "--query", "[].[name, auth_mode]")
    assert rows.stdout == "ep1\tkey\n"
    table = studio("online-endpoint", "show", "-n", "ep1", "-o", "table", "--query", "{name: name, mode: auth_mode}")
    assert table.stdout.splitlines() == ["Name  Mode", "----  ----", "ep1   key"]
    assert_error(studio("online-endpoint", "show", "-n", "ep1", "--query", "[name"), "--query: '[name' is not a valid")


@pytest.mark.django_db(transaction=True)
def test_bad_files_and_flags_are_named(studio: Studio, azure_files: Path) -> None:
    assert_error(studio("online-endpoint", "create", "-f", "nope.yml"), "--file: nope.yml does not exist")
    (azure_files / "broken.yml").write_text("name: [ep1\n")
    assert_error(studio("online-endpoint", "create", "-f", "broken.yml"), "broken.yml: is not valid YAML")
    (azure_files / "list.yml").write_text("- ep1\n")
    assert_error(studio("online-endpoint", "create", "-f", "list.yml"), "list.yml: expected a YAML mapping of keys")
    assert_error(
        studio("online-endpoint", "create", "-n", "ep1", "--set", "tags"),
        "--set: expected key=value with a dotted key such as instance_count=2, got 'tags'",
    )
    assert_error(studio("online-endpoint", "show", "-n", "nope1"), "online endpoint 'nope1' does not exist")


@pytest.mark.django_db(transaction=True)
def test_set_values_are_read_as_yaml_scalars(studio: Studio) -> None:
    result = studio(
        "online-endpoint", "create", "-n", "ep1", "--set", "description=fraud model", "--set", "tags.tier=1"
    )
    assert result.code == 0, result.stderr
    assert result.json()["description"] == "fraud model"
    assert result.json()["tags"] == {"tier": "1"}
