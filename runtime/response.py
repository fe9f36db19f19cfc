"""`AMLResponse`: what a scoring script returns for a custom status, headers or body.

With Azure's server `AMLResponse` is a Flask (Werkzeug) Response; this one has the same attributes and
methods, readable and writable (`status`, `status_code`, `headers`, `mimetype`, `content_type`, `data`,
`set_data`/`get_data`, `mimetype_params`, `content_length`, `set_cookie`, ...), without depending on Flask.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from email.utils import format_datetime, formatdate
from http import HTTPStatus
from typing import Any

from runtime.datastructures import (
    Headers,
    content_type_for,
    dump_options_header,
    is_json_mimetype,
    parse_options_header,
)

HTML = "text/html; charset=utf-8"
JSON = "application/json"

__all__ = ["AMLResponse", "Headers", "ResponseHeaders"]

# What app.py and older scripts call the response's header collection.
ResponseHeaders = Headers


def status_line(code: int) -> str:
    """`404` → `404 NOT FOUND`, as werkzeug writes a status; unknown codes say UNKNOWN."""
    try:
        phrase = HTTPStatus(code).phrase.upper()
    except ValueError:
        phrase = "UNKNOWN"
    return f"{code} {phrase}"


class MimetypeParams(dict):  # type: ignore[type-arg]
    """response.mimetype_params: a dict whose changes are written back to the Content-Type header."""

    def __init__(self, response: AMLResponse, params: Mapping[str, str]) -> None:
        super().__init__(params)
        self._response = response

    def _write(self) -> None:
        self._response.headers["Content-Type"] = dump_options_header(self._response.mimetype or "", self)

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._write()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._write()

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(*args, **kwargs)
        self._write()

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        value = super().pop(key, *default)
        self._write()
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._write()
        return value

    def clear(self) -> None:
        super().clear()
        self._write()


def _header_property(name: str, doc: str) -> property:
    def getter(self: AMLResponse) -> str | None:
        return self.headers.get(name)

    def setter(self: AMLResponse, value: Any) -> None:
        if value is None:
            self.headers.remove(name)
        else:
            self.headers[name] = str(value)

    return property(getter, setter, doc=doc)


def _http_date(value: datetime | float | int | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value, usegmt=True) if value.tzinfo else format_datetime(value) + " GMT"
    return formatdate(float(value), usegmt=True)


class AMLResponse:
    """A full HTTP answer: Flask's Response built from Azure's arguments (`json_str=True` JSON-encodes the body)."""

    charset = "utf-8"
    default_status = 200
    default_mimetype = "text/html"
    automatically_set_content_length = True
    direct_passthrough = False

    def __init__(
        self,
        message: Any,
        status_code: int | str = 200,
        response_headers: Mapping[str, Any] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.headers = Headers()
        self.body: bytes | Iterable[Any] = b""  # what the server sends: bytes, or an iterable it streams
        self._response: Any = [b""]
        self._on_close: list[Callable[[], Any]] = []
        self.status = status_code  # type: ignore[assignment]
        response_headers = dict(response_headers or {})
        if message is None:
            body: Any = b"{}"
            content_type: str | None = JSON
        elif json_str:
            body = json.dumps(message)
            content_type = JSON
        else:
            body = message
            # A Content-Type from the script replaces Flask's default instead of doubling it.
            has_type = any(k.lower() == "content-type" for k in response_headers)
            content_type = None if has_type else content_type_for(self.default_mimetype, self.charset)
        if content_type:
            self.headers.add("Content-Type", content_type)
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        # Repeated header values are comma separated, as in azmlinfsrv.
        for name, value in response_headers.items():
            for part in str(value).split(","):
                self.headers.add(name, part.strip())
        if isinstance(body, str | bytes | bytearray):
            self.set_data(body)
        else:
            self.response = body

    # -- status

    @property
    def status_code(self) -> int:
        """The status as a number; setting it updates `status`."""
        return self._status_code

    @status_code.setter
    def status_code(self, code: int) -> None:
        self._status_code = int(code)
        self._status = status_line(self._status_code)

    @property
    def status(self) -> str:
        """The status line, e.g. `200 OK`; set it to `404`, `"404"` or `"299 Custom"`."""
        return self._status

    @status.setter
    def status(self, value: int | str | HTTPStatus) -> None:
        if isinstance(value, int):
            self.status_code = value
            return
        text = str(value).strip()
        if not text:
            raise ValueError("Empty status argument")
        code, _, phrase = text.partition(" ")
        try:
            number = int(code)
        except ValueError:
            self._status_code, self._status = 0, f"0 {text}"  # werkzeug's answer to a status with no code
            return
        self._status_code = number
        self._status = f"{number} {phrase.strip()}" if phrase.strip() else status_line(number)

    # -- body

    @property
    def response(self) -> Any:
        """The body as werkzeug keeps it: a list of byte strings, or the iterable the script gave."""
        return self._response

    @response.setter
    def response(self, value: Any) -> None:
        if isinstance(value, str | bytes | bytearray):
            self.set_data(value)
            return
        self._response = value
        self.body = value
        self.headers.remove("Content-Length")

    def get_data(self, as_text: bool = False) -> Any:
        """The whole body as bytes, or as text with as_text=True (an iterable body is read out once)."""
        if not isinstance(self.body, bytes):
            self.set_data(b"".join(self.iter_encoded()))
        body: bytes = self.body  # type: ignore[assignment]
        return body.decode(self.charset) if as_text else body

    def set_data(self, value: str | bytes | bytearray) -> None:
        """Replace the body (text is encoded as UTF-8) and its Content-Length."""
        data = value.encode(self.charset) if isinstance(value, str) else bytes(value)
        self.body = data
        self._response = [data]
        if self.automatically_set_content_length:
            self.headers["Content-Length"] = str(len(data))

    data = property(get_data, set_data, doc="The body as bytes; assigning text or bytes replaces it.")

    def iter_encoded(self) -> Iterator[bytes]:
        """The body's chunks as bytes."""
        for chunk in self._response:
            if isinstance(chunk, str):
                yield chunk.encode(self.charset)
            elif isinstance(chunk, bytes | bytearray | memoryview):
                yield bytes(chunk)
            else:
                yield json.dumps(chunk).encode()

    @property
    def is_sequence(self) -> bool:
        """True when the body is a list or tuple (its length is known)."""
        return isinstance(self._response, list | tuple)

    @property
    def is_streamed(self) -> bool:
        """True when the body is an iterator of unknown length (sent chunked)."""
        try:
            len(self._response)
        except (TypeError, AttributeError):
            return True
        return False

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as a number (None for a streamed body)."""
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        if value is None:
            self.headers.remove("Content-Length")
        else:
            self.headers["Content-Length"] = str(int(value))

    # -- content type

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, whole."""
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value: str | None) -> None:
        if value is None:
            self.headers.remove("Content-Type")
        else:
            self.headers["Content-Type"] = value

    @property
    def mimetype(self) -> str | None:
        """The content type without parameters, lower case; setting it adds `; charset=utf-8` to text types."""
        content_type = self.content_type
        return parse_options_header(content_type)[0].lower() if content_type else None

    @mimetype.setter
    def mimetype(self, value: str) -> None:
        self.headers["Content-Type"] = content_type_for(value, self.charset)

    @property
    def mimetype_params(self) -> MimetypeParams:
        """The content type's parameters, e.g. {"charset": "utf-8"}; changes are written to the header."""
        return MimetypeParams(self, parse_options_header(self.content_type)[1])

    @property
    def is_json(self) -> bool:
        """True for application/json and application/*+json."""
        return is_json_mimetype(self.mimetype or "")

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when the content type is not JSON (see get_json)."""
        return self.get_json()

    def get_json(self, force: bool = False, silent: bool = False) -> Any:
        """The body parsed as JSON; None for a body whose content type is not JSON unless force=True."""
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self.get_data())
        except ValueError:
            if silent:
                return None
            raise

    # -- other headers

    location = _header_property("Location", "Where a redirect points.")
    content_encoding = _header_property("Content-Encoding", "How the body is encoded (gzip, br, ...).")
    content_language = _header_property("Content-Language", "The body's language.")
    content_location = _header_property("Content-Location", "Where the body can also be found.")
    content_md5 = _header_property("Content-MD5", "The body's MD5 digest.")
    retry_after = _header_property("Retry-After", "When to try again.")
    age = _header_property("Age", "Seconds the answer spent in a cache.")
    vary = _header_property("Vary", "Request headers the answer depends on.")
    allow = _header_property("Allow", "Methods the resource allows.")
    access_control_allow_origin = _header_property("Access-Control-Allow-Origin", "CORS: who may read the answer.")

    @property
    def date(self) -> str | None:
        return self.headers.get("Date")

    @date.setter
    def date(self, value: datetime | float | None) -> None:
        self._set_date("Date", value)

    @property
    def expires(self) -> str | None:
        return self.headers.get("Expires")

    @expires.setter
    def expires(self, value: datetime | float | None) -> None:
        self._set_date("Expires", value)

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("Last-Modified")

    @last_modified.setter
    def last_modified(self, value: datetime | float | None) -> None:
        self._set_date("Last-Modified", value)

    def _set_date(self, name: str, value: datetime | float | None) -> None:
        text = _http_date(value)
        if text is None:
            self.headers.remove(name)
        else:
            self.headers[name] = text

    # -- cookies

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | float | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        """Add a Set-Cookie header, written as werkzeug's dump_cookie writes it."""
        if expires is None and max_age is not None:
            expires = time.time() + max_age
        parts = [f"{key}={_cookie_quote(value)}"]
        if domain:
            parts.append(f"Domain={domain}")
        if expires is not None:
            parts.append(f"Expires={expires if isinstance(expires, str) else _http_date(expires)}")
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if path is not None:
            parts.append(f"Path={path}")
        if samesite is not None:
            parts.append(f"SameSite={samesite.title()}")
        if partitioned:
            parts.append("Partitioned")
        self.headers.add("Set-Cookie", "; ".join(parts))

    def delete_cookie(
        self,
        key: str,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        """Tell the client to drop a cookie (empty value, expired)."""
        self.set_cookie(
            key,
            expires=0,
            max_age=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )

    # -- life cycle

    def call_on_close(self, func: Callable[[], Any]) -> Callable[[], Any]:
        """Run `func` when the response is closed."""
        self._on_close.append(func)
        return func

    def close(self) -> None:
        """Close an iterable body that can be closed, then run the call_on_close functions."""
        closer = getattr(self._response, "close", None)
        if callable(closer):
            closer()
        for func in self._on_close:
            func()

    def freeze(self) -> None:
        """Read a streamed body into memory (and set Content-Length)."""
        self.get_data()

    def __enter__(self) -> AMLResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        size = "streamed" if self.is_streamed else f"{sum(len(chunk) for chunk in self.iter_encoded())} bytes"
        return f"<{type(self).__name__} {size} [{self.status}]>"


_COOKIE_NO_QUOTE = re.compile(r"[\w!#$%&'()*+\-./:<=>?@\[\]^`{|}~]*", re.ASCII)
_COOKIE_SLASH = re.compile(rb'[\x00-\x19",;\\\x7f-\xff]')


def _cookie_quote(value: str) -> str:
    # werkzeug 3's rule: a value of cookie-safe characters as is, else quoted with `"`/`\` escaped and
    # control, `,`, `;` and non-ASCII bytes written as octal escapes.
    if _COOKIE_NO_QUOTE.fullmatch(value):
        return value

    def escape(match: re.Match[bytes]) -> bytes:
        byte = match.group()
        return b"\\" + byte if byte in b'"\\' else b"\\%03o" % byte[0]

    return '"' + _COOKIE_SLASH.sub(escape, value.encode()).decode("latin-1") + '"'
