"""The one exception type for errors a user can fix.

Shown as a form error in the UI, a 400 in the API and a message with exit code 1 in the CLI.
The message names the field and the value.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """A user-fixable error; `field` names the input at fault when there is one."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


class NotFound(ApplicationError):
    """The named object does not exist (a 404 in the API)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class Conflict(ApplicationError):
    """The request clashes with the current state (a 409 in the API)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, status=409)
