"""`studio login`: exchange a username and password for a personal API token and keep it in cli.json."""

from __future__ import annotations

import getpass
import os
import sys
from argparse import Namespace
from typing import Any

import httpx

from cli.client import CLIENT_HEADERS, TIMEOUT, error_message, not_reachable
from cli.config import DEFAULT_URL, read_config_file, write_config_file
from cli.errors import CliError


def login(args: Namespace) -> dict[str, Any]:
    """Sign in, store the new token (never printed) with the studio's URL, and say who you are."""
    url = (args.studio_url or os.environ.get("STUDIO_URL") or read_config_file().get("url") or DEFAULT_URL).rstrip("/")
    username = args.username or input("Username: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {username} at {url}: ")
    body: dict[str, Any] = {"username": username, "password": password, "name": args.token_name}
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    try:
        response = httpx.post(f"{url}/api/v1/auth/login", json=body, headers=CLIENT_HEADERS, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise not_reachable(url, exc) from None
    if response.status_code != 201:
        message, _ = error_message(response)
        raise CliError(f"sign-in to {url} refused: {message}")
    answer = response.json()
    path = write_config_file(url=url, token=str(answer["token"]))
    return {
        "user": answer["user"],
        "role": answer["role"],
        "token_name": answer["name"],
        "expires_at": answer["expires_at"],
        "config": str(path),
    }
