"""The CLI's one error type: printed as a single `ERROR: <message>` line, exit code 1."""

from __future__ import annotations


class CliError(Exception):
    """A failure the user can act on; `message` is the whole line shown on stderr."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """The studio answered with an error (`{"error": {"message", "field"}}`)."""

    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
