"""`AMLResponse`: what a scoring script returns for a custom status, headers or body."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

HTML = "text/html; charset=utf-8"
JSON = "application/json"


class AMLResponse:
    """A full HTTP answer: body, status, headers; `json_str=True` sends the body through json.dumps."""

    def __init__(
        self,
        message: Any,
        status_code: int = 200,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.status_code = int(status_code)
        self.headers = ResponseHeaders()
        response_headers = dict(response_headers or {})
        if message is None:
            self.body: bytes | Iterable[Any] = b"{}"
            content_type: str | None = JSON
        elif json_str:
            self.body = json.dumps(message).encode()
            content_type = JSON
        else:
            self.body = message.encode() if isinstance(message, str) else message
            # A Content-Type from the script replaces Flask's default instead of doubling it.
            content_type = None if any(k.lower() == "content-type" for k in response_headers) else HTML
        if content_type:
            self.headers.add("Content-Type", content_type)
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        # Repeated header values are comma separated, as in azmlinfsrv.
        for name, value in response_headers.items():
            for part in str(value).split(","):
                self.headers.add(name, part.strip())

    @property
    def status(self) -> str:
        """The status code as text, as Flask shows it."""
        return str(self.status_code)

    @property
    def data(self) -> bytes:
        """The body as bytes (joined when it is an iterable)."""
        return self.get_data()

    def get_data(self, as_text: bool = False) -> Any:
        """The body as bytes, or as text with as_text=True."""
        body = self.body
        if not isinstance(body, bytes | bytearray):
            body = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in body)
            self.body = body
        return body.decode() if as_text else bytes(body)

    @property
    def content_type(self) -> str | None:
        """The Content-Type header."""
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str:
        """The content type without parameters."""
        return (self.content_type or "").split(";")[0].strip()

    def __repr__(self) -> str:
        return f"<AMLResponse {self.status_code}>"


class ResponseHeaders:
    """Response headers in order, repeatable, looked up without regard to case (like werkzeug's Headers)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def add(self, name: str, value: Any) -> None:
        """Add a value, keeping earlier ones."""
        self._items.append((name, str(value)))

    add_header = add

    def __setitem__(self, name: str, value: Any) -> None:
        self.remove(name)
        self._items.append((name, str(value)))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """The first value of a header, or `default`."""
        lower = name.lower()
        for key, value in self._items:
            if key.lower() == lower:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        """Every value of a header."""
        lower = name.lower()
        return [v for k, v in self._items if k.lower() == lower]

    def remove(self, name: str) -> None:
        """Drop every value of a header."""
        lower = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lower]

    __delitem__ = remove

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """(name, value) pairs in order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"ResponseHeaders({self._items!r})"
