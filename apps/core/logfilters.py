"""Django's request log without the requests the studio logged its own way (one line each, not two).

A refusal (a 403 naming the role it needs) is expected: apps/accounts/permissions.py logs it as one line,
with the user and the role, and marks the request; Django would add its own line, for a page's
`PermissionDenied` with the whole traceback. Configured on the `django.request` logger in settings.LOGGING.
"""

from __future__ import annotations

import logging
from typing import Any

_LOGGED = "studio_logged"


def mark_logged(request: Any) -> None:
    """This request's answer has been logged: Django's request log leaves it out (a DRF request marks its own)."""
    setattr(getattr(request, "_request", request), _LOGGED, True)


class SkipLogged(logging.Filter):
    """Drops Django's record of a request `mark_logged` marked."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(getattr(record, "request", None), _LOGGED, False)
