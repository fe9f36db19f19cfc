"""The CLI's one error type: printed as a single `ERROR: <message>` line (and a hint line), exit code 1."""

from __future__ import annotations


class CliError(Exception):
    """A failure the user can act on; `message` is the whole line shown on stderr, `hint` where to read more."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ApiError(CliError):
    """The studio answered with an error (`{"error": {"message", "field"}}`)."""

    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
