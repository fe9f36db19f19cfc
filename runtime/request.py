"""The request a scoring script sees: `AMLRequest` for `@rawhttp` scripts, with the Flask attributes they use."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl, unquote

F = TypeVar("F", bound=Callable[..., Any])

# azmlinfsrv keeps this module-level flag; scripts or tools that read it keep working.
_rawHttpRequested = False


def rawhttp(func: F) -> F:
    """Mark run() as wanting the raw request object instead of the decoded body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    func.__aml_rawhttp__ = True  # type: ignore[attr-defined]
    return func


def reset_rawhttp() -> None:
    """Forget an earlier script's @rawhttp (tests load several scripts in one process)."""
    global _rawHttpRequested
    _rawHttpRequested = False


def rawhttp_requested() -> bool:
    """True once a loaded script has applied @rawhttp."""
    return _rawHttpRequested


class BadRequest(Exception):
    """The body does not parse as the script asked (Flask raises the same for get_json)."""


class UnsupportedMediaType(BadRequest):
    """get_json() on a body that is not declared as JSON."""


class MultiDict(dict):  # type: ignore[type-arg]
    """A dict that keeps every value of a repeated key: `d[k]` is the first, `d.getlist(k)` all of them."""

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        for key, value in pairs:
            super().setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key)[0]

    def get(self, key: str, default: Any = None, type: Callable[[Any], Any] | None = None) -> Any:  # noqa: A002
        """The first value of `key`, converted by `type` when given (None on a failed conversion)."""
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (TypeError, ValueError):
            return default

    def getlist(self, key: str) -> list[Any]:
        """Every value of `key`, in request order."""
        return list(super().get(key, []))

    def items(self, multi: bool = False) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        """(key, first value) pairs, or every pair with multi=True."""
        for key, values in super().items():
            if multi:
                yield from ((key, v) for v in values)
            else:
                yield key, values[0]

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        """The first value of each key."""
        return (values[0] for values in super().values())

    def lists(self) -> Iterator[tuple[str, list[Any]]]:
        """(key, all values) pairs."""
        return ((k, list(v)) for k, v in super().items())

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        """A plain dict: first values, or lists with flat=False."""
        return dict(self.items()) if flat else dict(self.lists())


class Headers:
    """Case-insensitive request headers, iterated with Flask's capitalisation (`Content-Type`)."""

    __slots__ = ("_lower",)

    def __init__(self, lower: dict[str, str]) -> None:
        self._lower = lower

    def get(self, key: str, default: Any = None) -> Any:
        """The header's value, or `default`."""
        return self._lower.get(key.lower(), default)

    def getlist(self, key: str) -> list[str]:
        """The header's value as a one-item list (repeated headers are joined with commas)."""
        value = self._lower.get(key.lower())
        return [] if value is None else [value]

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def __iter__(self) -> Iterator[tuple[str, str]]:
        # Flask's Headers iterate as (name, value) pairs, which is what dict(request.headers) relies on.
        return ((_title(k), v) for k, v in self._lower.items())

    def __len__(self) -> int:
        return len(self._lower)

    def keys(self) -> list[str]:
        """Header names, capitalised."""
        return [_title(k) for k in self._lower]

    def items(self) -> list[tuple[str, str]]:
        """(name, value) pairs, names capitalised."""
        return list(self)

    def to_dict(self) -> dict[str, str]:
        """A plain dict with capitalised names."""
        return dict(self)

    def __repr__(self) -> str:
        return f"Headers({self.to_dict()!r})"


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class FileStorage:
    """An uploaded file from a multipart form, like werkzeug's FileStorage."""

    def __init__(
        self, data: bytes, *, name: str, filename: str | None, content_type: str | None, headers: dict[str, str]
    ) -> None:
        self.stream: IO[bytes] = io.BytesIO(data)
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.headers = Headers(headers)

    @property
    def mimetype(self) -> str:
        """The content type without parameters."""
        return (self.content_type or "").split(";")[0].strip().lower()

    def read(self, size: int = -1) -> bytes:
        """Read the file's bytes."""
        return self.stream.read(size)

    def save(self, dst: str | IO[bytes], buffer_size: int = 16384) -> None:
        """Write the file to a path or an open binary file."""
        self.stream.seek(0)
        if isinstance(dst, str | bytes) or hasattr(dst, "__fspath__"):
            with open(dst, "wb") as f:  # type: ignore[arg-type]
                shutil.copyfileobj(self.stream, f, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def close(self) -> None:
        """Release the buffer."""
        self.stream.close()

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


class AMLRequest:
    """One HTTP request; what `@rawhttp` run() functions receive (the Flask attributes Azure scripts use)."""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: dict[str, str],
        body: bytes,
        remote_addr: str | None = None,
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = Headers(headers)
        self._body = body
        self.remote_addr = remote_addr
        self.scheme = scheme
        self._args: MultiDict | None = None
        self._form: tuple[MultiDict, MultiDict] | None = None
        self._json: Any = _UNSET

    @property
    def args(self) -> MultiDict:
        """The query-string parameters."""
        if self._args is None:
            self._args = MultiDict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))
        return self._args

    @property
    def full_path(self) -> str:
        """Path and query string."""
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def url(self) -> str:
        """The URL as the client addressed it."""
        host = self.headers.get("host", "localhost")
        query = f"?{self.query_string.decode('latin-1')}" if self.query_string else ""
        return f"{self.scheme}://{host}{self.path}{query}"

    @property
    def content_type(self) -> str | None:
        """The Content-Type header."""
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str:
        """The content type without parameters, lower case."""
        return (self.content_type or "").split(";")[0].strip().lower()

    @property
    def content_length(self) -> int:
        """Length of the body in bytes."""
        return len(self._body)

    @property
    def is_json(self) -> bool:
        """True for application/json and application/*+json, as Flask decides."""
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    @property
    def data(self) -> bytes:
        """The raw body."""
        return self._body

    @property
    def stream(self) -> IO[bytes]:
        """The body as a file object."""
        return io.BytesIO(self._body)

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> bytes | str:
        """The raw body, as bytes or (as_text=True) text."""
        return self._body.decode("utf-8", "replace") if as_text else self._body

    @property
    def json(self) -> Any:
        """The body parsed as JSON (see get_json)."""
        return self.get_json()

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body parsed as JSON; like Flask, only for a JSON content type unless force=True."""
        if self._json is not _UNSET:
            return self._json
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType(
                "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."
            )
        try:
            value = json.loads(self._body)
        except ValueError as ex:
            if silent:
                return None
            raise BadRequest(f"Failed to decode JSON object: {ex}") from None
        if cache:
            self._json = value
        return value

    @property
    def form(self) -> MultiDict:
        """Fields of a urlencoded or multipart form."""
        return self._parse_form()[0]

    @property
    def files(self) -> MultiDict:
        """Uploaded files of a multipart form, as FileStorage objects."""
        return self._parse_form()[1]

    @property
    def values(self) -> MultiDict:
        """Query parameters and form fields together."""
        return MultiDict([*self.args.items(multi=True), *self.form.items(multi=True)])

    def _parse_form(self) -> tuple[MultiDict, MultiDict]:
        if self._form is None:
            mt = self.mimetype
            if mt == "application/x-www-form-urlencoded":
                pairs = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
                self._form = (MultiDict(pairs), MultiDict())
            elif mt == "multipart/form-data":
                self._form = parse_multipart(self._body, _param(self.content_type or "", "boundary"))
            else:
                self._form = (MultiDict(), MultiDict())
        return self._form

    def __repr__(self) -> str:
        return f"<AMLRequest {self.method} {self.full_path if self.query_string else self.path}>"


_UNSET = object()


def _param(header: str, key: str) -> str | None:
    """A parameter of a header value such as `multipart/form-data; boundary=xyz`."""
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def parse_multipart(body: bytes, boundary: str | None) -> tuple[MultiDict, MultiDict]:
    """Split a multipart/form-data body into (form fields, files)."""
    fields: list[tuple[str, Any]] = []
    files: list[tuple[str, Any]] = []
    if not boundary:
        return MultiDict(), MultiDict()
    delimiter = b"--" + boundary.encode("latin-1")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        raw_headers, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raw_headers, sep, content = chunk.partition(b"\n\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers: dict[str, str] = {}
        for line in raw_headers.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _param(disposition, "name") or ""
        filename = _param(disposition, "filename*")
        if filename and "''" in filename:
            filename = unquote(filename.split("''", 1)[1])  # RFC 5987: charset''percent-encoded
        else:
            filename = _param(disposition, "filename")
        if filename is not None:
            files.append(
                (
                    name,
                    FileStorage(
                        content, name=name, filename=filename, content_type=headers.get("content-type"), headers=headers
                    ),
                )
            )
        else:
            fields.append((name, content.decode("utf-8", "replace")))
    return MultiDict(fields), MultiDict(files)
