"""Waiting for a deployment to settle, with its timeline and state changes shown on stderr, in order, once each.

What a person reads is one line per step; a long message (a traceback, an installer's output) is cut to its
headline here and stays whole in `show -o json` and in the logs.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from cli.client import Studio
from cli.errors import ApiError, CliError

TERMINAL = ("Succeeded", "Failed", "Canceled")
POLL_S = float(os.environ.get("STUDIO_CLI_POLL_S", "1"))
QUIET_HINT_S = 120.0  # no news for this long usually means no worker is running
HEADLINE_MAX = 300  # characters of a message shown on one progress line
# `ValueError: bad`, `numpy.core._exceptions.MemoryError: ...`, `module.Error` alone
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failure|Interrupt|Exit|Warning)\b(:.*)?$")


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def deployment_path(endpoint: str, name: str) -> str:
    return f"online-endpoints/{endpoint}/deployments/{name}"


def headline(message: str | None) -> str:
    """The line of a message a person needs: its first line, or the exception a traceback ends with."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.startswith("Traceback (most recent call last)") or first.startswith("File "):
        exceptions = [line for line in lines if _EXCEPTION_LINE.match(line)]
        first = exceptions[-1] if exceptions else lines[-1]
    if len(first) > HEADLINE_MAX:
        first = first[: HEADLINE_MAX - 1] + "…"
    return first


def logs_hint(endpoint: str, name: str, reason: str | None = None) -> str:
    """Where the whole story is."""
    container = " --container storage-initializer" if reason in ("ModelDownloadFailure", "CodeDownloadFailure") else ""
    return f"more: studio online-deployment get-logs -n {name} -e {endpoint}{container} --lines 100"


def events_so_far(studio: Studio, endpoint: str, name: str) -> int:
    """How many timeline events the deployment has now (an update shows only the ones after)."""
    page = studio.get(f"{deployment_path(endpoint, name)}/events", limit=1)
    return int(page.get("count") or 0) if isinstance(page, dict) else 0


def wait_for_deployment(
    studio: Studio, *, endpoint: str, name: str, first: dict[str, Any], events_seen: int = 0, after_failure: str = ""
) -> dict[str, Any]:
    """Poll until the deployment reaches Succeeded, Failed or Canceled; Failed/Canceled raise.

    Events come first and the state line after them, so the state reads as the result of its steps.
    `after_failure` is added to the error (e.g. that traffic was not changed).
    """
    path = deployment_path(endpoint, name)
    seen_events = events_seen
    state = None
    deployment = first
    last_news = time.monotonic()
    hinted = False
    while True:
        for event in studio.iterate(f"{path}/events", offset=seen_events):
            seen_events += 1
            last_news = time.monotonic()
            if event.get("reason") in TERMINAL:
                continue  # the outcome is said once, by the state line or the error below
            progress(_event_line(event))
        if deployment.get("provisioning_state") != state:
            state = deployment.get("provisioning_state")
            if state == "Succeeded" or state not in TERMINAL:  # a failure is said once, by the error below
                progress(f"{endpoint}/{name}: {state}")
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
        message = headline(deployment.get("message")) or "no message"
        text = f"deployment {name!r} of online endpoint {endpoint!r} is {state}: {reason}: {message}"
        if after_failure:
            text += f"; {after_failure}"
        raise CliError(text, hint=logs_hint(endpoint, name, deployment.get("reason")))
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
            reason = current.get("reason") or ""
            raise CliError(f"{what}: deletion failed: {reason} {headline(current.get('message'))}".rstrip())
        time.sleep(POLL_S)


def _event_line(event: dict[str, Any]) -> str:
    where = "/".join(part for part in (event.get("instance"), event.get("container")) if part)
    # hh:mm:ss (UTC) is enough beside the other lines of one command; `show -o json` has the whole time.
    clock = str(event.get("time") or "")[11:19]
    text = f"  {clock}  {event.get('type', '')} {event.get('reason', '')}"
    if where:
        text += f" [{where}]"
    message = headline(event.get("message"))
    if message:
        text += f": {message}"
    return text
