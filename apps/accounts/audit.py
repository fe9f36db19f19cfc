"""The audit trail's one writer, and who is acting (user, channel, address), carried in a context variable.

Services call `record(...)` for every change; they never take the request. The middleware below says who acts
for a web or API request; Celery tasks and management commands act as `system` unless they say otherwise with
`acting(...)`. Under DRF the user is read when the entry is written, after the API view has authenticated
the token (DRF sets it on the underlying request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.accounts.models import AuditEntry, Channel

CLI_HEADER = "X-Studio-Client"  # the CLI sends `X-Studio-Client: cli`, so its changes read "CLI", not "API"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a request (its user is read late) or a fixed user, through a channel, from an address."""

    channel: str = Channel.SYSTEM
    address: str = ""
    request: HttpRequest | None = None
    fixed_user: Any = None

    @property
    def user(self) -> Any:
        user = self.fixed_user if self.request is None else getattr(self.request, "user", None)
        return user if user is not None and getattr(user, "is_authenticated", False) else None


_current: ContextVar[Actor | None] = ContextVar("studio_actor", default=None)


def current() -> Actor:
    """Who acts now (`system` outside any request)."""
    return _current.get() or Actor()


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Run a block as the given actor."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def channel_of(request: HttpRequest) -> str:
    """UI for pages, API for /api/, CLI when the studio CLI says so."""
    if request.path.startswith("/api/"):
        return Channel.CLI if request.headers.get(CLI_HEADER, "").lower() == "cli" else Channel.API
    return Channel.UI


def address_of(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")[:64]


def record(
    action: str,
    *,
    endpoint: str = "",
    target: str = "",
    before: Any = None,
    after: Any = None,
    user: Any = None,
    by: str = "",
) -> AuditEntry:
    """Write one audit entry for a change made by the current actor (or `user` when a service was given one;
    `by` names the part of the studio that acted when no one did, such as "rollout")."""
    actor = current()
    who = actor.user
    if who is None and user is not None and getattr(user, "is_authenticated", False):
        who = user
    return AuditEntry.objects.create(
        user=who,
        username=who.get_username() if who is not None else by,
        channel=actor.channel,
        address=actor.address,
        action=action,
        endpoint=endpoint,
        target=target[:200],
        before=before,
        after=after,
    )


class ActorMiddleware:
    """Every request acts as its user, through its channel, from its address, for the audit trail."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with acting(Actor(channel=channel_of(request), address=address_of(request), request=request)):
            return self.get_response(request)
