"""Where the studio is and how to sign in: flags, then STUDIO_URL / STUDIO_TOKEN, then $STUDIO_HOME/cli.json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cli.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Config:
    """The studio's base URL and the API token the CLI sends."""

    url: str
    token: str
    source: str  # where the values came from, for error messages


def studio_home() -> Path:
    """STUDIO_HOME, default ~/.studio (the same rule as the studio's settings)."""
    raw = os.environ.get("STUDIO_HOME")
    return Path(raw).expanduser() if raw else Path("~/.studio").expanduser()


def config_path() -> Path:
    return studio_home() / "cli.json"


def read_config_file() -> dict[str, str]:
    """The `{"url", "token"}` that `studio up` wrote, or {} when there is none."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the CLI config {path}: {exc}; delete it and run `studio up` again") from None
    if not isinstance(data, dict):
        raise CliError(f"the CLI config {path} is not a JSON object; delete it and run `studio up` again")
    return {key: str(value) for key, value in data.items() if key in ("url", "token") and value}


def write_config_file(*, url: str, token: str) -> Path:
    """Save the URL and token for later CLI runs (readable by the owner only)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle, indent=2)
    path.chmod(0o600)
    return path


def resolve(*, url: str | None, token: str | None) -> Config:
    """Pick URL and token by precedence: flag, environment, config file."""
    stored = read_config_file()
    final_url = url or os.environ.get("STUDIO_URL") or stored.get("url") or DEFAULT_URL
    final_token = token or os.environ.get("STUDIO_TOKEN") or stored.get("token") or ""
    if token:
        source = "--token"
    elif os.environ.get("STUDIO_TOKEN"):
        source = "STUDIO_TOKEN"
    else:
        source = str(config_path())
    if not final_token:
        raise CliError(
            f"no API token: run `studio up` (it writes {config_path()}), "
            "or pass --token / set STUDIO_TOKEN with a token from the studio"
        )
    return Config(url=final_url.rstrip("/"), token=final_token, source=source)
