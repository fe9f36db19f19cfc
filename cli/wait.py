"""Waiting for a deployment to settle, with its state changes and timeline shown on stderr."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from cli.client import Studio
from cli.errors import ApiError, CliError

TERMINAL = ("Succeeded", "Failed", "Canceled")
POLL_S = float(os.environ.get("STUDIO_CLI_POLL_S", "1"))
QUIET_HINT_S = 120.0  # no news for this long usually means no worker is running


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def deployment_path(endpoint: str, name: str) -> str:
    return f"online-endpoints/{endpoint}/deployments/{name}"


def wait_for_deployment(studio: Studio, *, endpoint: str, name: str, first: dict[str, Any]) -> dict[str, Any]:
    """Poll until the deployment reaches Succeeded, Failed or Canceled; Failed/Canceled raise."""
    path = deployment_path(endpoint, name)
    seen_events = 0
    state = None
    deployment = first
    last_news = time.monotonic()
    hinted = False
    while True:
        if deployment.get("provisioning_state") != state:
            state = deployment.get("provisioning_state")
            progress(f"{endpoint}/{name}: {state}")
            last_news = time.monotonic()
        for event in studio.iterate(f"{path}/events", offset=seen_events):
            seen_events += 1
            progress(_event_line(event))
            last_news = time.monotonic()
        if state in TERMINAL:
            break
        if not hinted and time.monotonic() - last_news > QUIET_HINT_S:
            hinted = True
            progress(
                f"{endpoint}/{name}: still {state} after {QUIET_HINT_S:.0f} s with no news; is the studio's worker "
                "running (`studio up` starts it)? Ctrl-C stops waiting, the deployment carries on."
            )
        time.sleep(POLL_S)
        try:
            deployment = studio.get(path)
        except ApiError as exc:
            if exc.status == 404:
                raise CliError(
                    f"deployment {name!r} of online endpoint {endpoint!r} was deleted while waiting"
                ) from None
            raise
    if state != "Succeeded":
        reason = deployment.get("reason") or state
        message = deployment.get("message") or "no message; see `studio online-deployment get-logs`"
        raise CliError(f"deployment {name!r} of online endpoint {endpoint!r} is {state}: {reason}: {message}")
    return deployment


def wait_until_gone(studio: Studio, path: str, what: str) -> None:
    """Poll until GET answers 404 (the worker has finished deleting)."""
    progress(f"{what}: Deleting")
    while True:
        try:
            current = studio.get(path)
        except ApiError as exc:
            if exc.status == 404:
                progress(f"{what}: deleted")
                return
            raise
        if current.get("provisioning_state") == "Failed":
            raise CliError(f"{what}: deletion failed: {current.get('reason') or ''} {current.get('message') or ''}")
        time.sleep(POLL_S)


def _event_line(event: dict[str, Any]) -> str:
    where = "/".join(part for part in (event.get("instance"), event.get("container")) if part)
    text = f"  {event.get('time', '')}  {event.get('type', '')} {event.get('reason', '')}"
    if where:
        text += f" [{where}]"
    if event.get("message"):
        text += f": {event['message']}"
    return text
