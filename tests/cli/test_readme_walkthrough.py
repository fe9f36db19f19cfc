"""The README's walkthrough, run as written against a real `studio up` on a fresh STUDIO_HOME.

The commands are read from the README (the section after "Two commands"), so the two cannot drift: a
`# → text` line under a command is the output it must print, and a command marked `# fails` must fail the way
a person should see it (a few lines, no traceback).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_up import start_up, stop_with_ctrl_c, up_env  # noqa: F401 (fixtures)
from tests.endpoints.conftest import kill_instances

REPO = Path(__file__).resolve().parents[2]
SECTION = "## From Azure YAML files to a scored request"


@dataclass
class Command:
    line: str
    expected: str | None = None
    fails: bool = False


def walkthrough(readme: str) -> list[Command]:
    """The shell commands of the walkthrough section, continuation lines joined, with their expectations."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    commands: list[Command] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        logical: list[str] = []
        pending = ""
        for raw in block.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            logical.append(pending + raw)
            pending = ""
        for line in logical:
            stripped = line.strip()
            if stripped.startswith("# → "):
                commands[-1].expected = stripped.removeprefix("# → ")
            elif stripped and not stripped.startswith("#"):
                fails = "# fails" in stripped
                commands.append(Command(stripped.split("  # ")[0].strip() if fails else stripped, fails=fails))
    return commands


def test_the_walkthrough_is_read_from_the_readme() -> None:
    commands = walkthrough((REPO / "README.md").read_text())
    assert commands[0].line.startswith("uv run --no-project") and "samples/make_models.py" in commands[0].line
    assert any(c.line.startswith("studio online-endpoint create --name ep1") for c in commands)
    assert [c.line.split()[4] for c in commands if c.fails] == ["broken"]
    assert sum(c.expected is not None for c in commands) >= 6


@pytest.fixture
def samples_copy(tmp_path: Path) -> Path:
    """The samples folder as shipped (no models made yet), where the commands run."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "samples", work / "samples", ignore=shutil.ignore_patterns("model", "*.png", "__pycache__"))
    return work


@pytest.fixture
def instances_dir(up_env: dict[str, str]) -> Iterator[Path]:  # noqa: F811
    folder = Path(up_env["STUDIO_HOME"]) / "instances"
    yield folder
    kill_instances(folder)


@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_the_readme_walkthrough_runs_as_written_on_a_fresh_studio_home(
    start_up: Any,  # noqa: F811
    up_env: dict[str, str],  # noqa: F811
    samples_copy: Path,
    instances_dir: Path,
) -> None:
    assert not (Path(up_env["STUDIO_HOME"]) / "cli.json").exists()
    up = start_up("walkthrough")
    env = {**up_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{up_env.get('PATH', '')}"}
    # `uv run --with` layers its packages over an interpreter's own: the plain Python a user starts from, not
    # this suite's virtualenv (which has pandas and the rest, and once hid a package the command forgot).
    env.pop("VIRTUAL_ENV", None)
    env["UV_PYTHON"] = getattr(sys, "_base_executable", sys.executable)
    for command in walkthrough((REPO / "README.md").read_text()):
        done = subprocess.run(
            ["bash", "-c", command.line],
            cwd=samples_copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        where = (
            f"$ {command.line}\n--- stdout:\n{done.stdout}\n--- stderr:\n{done.stderr}\n--- up:\n{up.output()[-3000:]}"
        )
        if command.fails:
            assert done.returncode == 1, where
            lines = done.stderr.strip().splitlines()
            assert len(lines) <= 8 and "Traceback" not in done.stderr, where
            assert "UserScriptInitFailed" in lines[-2] and "FileNotFoundError" in lines[-2], where
            assert lines[-1].startswith("more: studio online-deployment get-logs -n broken -e ep1"), where
            continue
        assert done.returncode == 0, where
        if command.expected is not None:
            assert done.stdout.strip() == command.expected, where
    negative = (samples_copy / "negative.png").read_bytes()
    assert (
        negative.startswith(b"\x89PNG") and negative != (samples_copy / "samples/image/sample-image.png").read_bytes()
    )
    assert stop_with_ctrl_c(up) == 0
