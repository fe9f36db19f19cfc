"""The request a scoring script sees: `AMLRequest` for `@rawhttp` scripts, with Flask's (Werkzeug's) Request surface.

Azure's server gives `@rawhttp` scripts a Flask request; this one answers the same attributes and methods
with the same values (see docs/runtime.md for the few deliberate differences), without depending on Flask.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from runtime.datastructures import (
    BadRequest,
    CombinedMultiDict,
    EnvironHeaders,
    ImmutableMultiDict,
    MultiDict,
    UnsupportedMediaType,
    is_json_mimetype,
    parse_options_header,
)

__all__ = [
    "AMLRequest",
    "BadRequest",
    "FileStorage",
    "MultiDict",
    "UnsupportedMediaType",
    "rawhttp",
]

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


class FileStorage:
    """An uploaded file from a multipart form, like werkzeug's FileStorage."""

    def __init__(
        self, data: bytes, *, name: str, filename: str | None, content_type: str | None, headers: dict[str, str]
    ) -> None:
        self.stream: IO[bytes] = io.BytesIO(data)
        self.name = name
        self.filename = filename
        self.headers = EnvironHeaders(headers)
        self._content_type = content_type
        self._size = len(data)

    @property
    def content_type(self) -> str | None:
        """The part's Content-Type header."""
        return self._content_type

    @property
    def content_length(self) -> int:
        """The part's size in bytes."""
        return int(self.headers.get("content-length") or self._size)

    @property
    def mimetype(self) -> str:
        """The content type without parameters, lower case."""
        return parse_options_header(self._content_type)[0].lower()

    @property
    def mimetype_params(self) -> dict[str, str]:
        """The content type's parameters, e.g. {"charset": "utf-8"}."""
        return parse_options_header(self._content_type)[1]

    def read(self, size: int = -1) -> bytes:
        """Read the file's bytes."""
        return self.stream.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self.stream.readline(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

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
        return f"<FileStorage: {self.filename!r} ({self._content_type!r})>"


class UserAgent:
    """request.user_agent: the User-Agent header; `str()` and `.string` give it whole."""

    def __init__(self, string: str) -> None:
        self.string = string

    def __str__(self) -> str:
        return self.string

    def __bool__(self) -> bool:
        return bool(self.string)

    def __repr__(self) -> str:
        return f"<UserAgent {self.string!r}>"


class AMLRequest:
    """One HTTP request as Flask's Request shows it: what `@rawhttp` run() functions receive."""

    charset = "utf-8"
    encoding_errors = "replace"
    max_content_length: int | None = None
    max_form_memory_size: int | None = None
    # Flask's routing attributes: the runtime has one scoring route.
    url_rule = None
    view_args: dict[str, Any] = {}
    blueprint = None
    blueprints: list[str] = []
    routing_exception = None

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
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        self.headers = EnvironHeaders(headers)
        self._lower = headers
        self._body = body
        self.remote_addr = remote_addr
        self.scheme = scheme
        self.script_root = ""
        self.root_path = ""
        self._args: ImmutableMultiDict | None = None
        self._form: tuple[ImmutableMultiDict, ImmutableMultiDict] | None = None
        self._cookies: ImmutableMultiDict | None = None
        self._json: Any = _UNSET
        self._environ: dict[str, Any] | None = None

    # -- where the request went

    @property
    def endpoint(self) -> str | None:
        """Flask's endpoint name of the matched route (the scoring route is `score`)."""
        return "score" if self.path == "/score" else None

    @property
    def host(self) -> str:
        """The Host header (host and port, as the client addressed the server)."""
        return str(self._lower.get("host") or "localhost")

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def host_url(self) -> str:
        """`http://host/`"""
        return f"{self.scheme}://{self.host}/"

    @property
    def root_url(self) -> str:
        """`http://host/` plus the script root (none here)."""
        return f"{self.scheme}://{self.host}{self.script_root}/"

    url_root = root_url

    @property
    def base_url(self) -> str:
        """The URL without the query string."""
        return f"{self.scheme}://{self.host}{self.script_root}{self.path}"

    @property
    def url(self) -> str:
        """The URL as the client addressed it, with the query string."""
        query = f"?{self.query_string.decode('latin-1')}" if self.query_string else ""
        return self.base_url + query

    @property
    def full_path(self) -> str:
        """Path and query string; Flask keeps the `?` even when the query string is empty."""
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def args(self) -> ImmutableMultiDict:
        """The query-string parameters."""
        if self._args is None:
            text = self.query_string.decode("utf-8", self.encoding_errors)
            self._args = ImmutableMultiDict(parse_qsl(text, keep_blank_values=True))
        return self._args

    # -- who sent it

    @property
    def access_route(self) -> list[str]:
        """X-Forwarded-For's addresses when present, else the remote address."""
        forwarded = self._lower.get("x-forwarded-for")
        if forwarded:
            return [part.strip() for part in forwarded.split(",") if part.strip()]
        return [self.remote_addr] if self.remote_addr else []

    @property
    def remote_user(self) -> str | None:
        return None

    @property
    def user_agent(self) -> UserAgent:
        return UserAgent(self._lower.get("user-agent", ""))

    @property
    def referrer(self) -> str | None:
        return self._lower.get("referer")

    @property
    def origin(self) -> str | None:
        return self._lower.get("origin")

    @property
    def authorization(self) -> str | None:
        """The Authorization header as sent (Flask parses it into an object; scripts mostly read the token)."""
        return self._lower.get("authorization")

    @property
    def cookies(self) -> ImmutableMultiDict:
        """The Cookie header's name/value pairs."""
        if self._cookies is None:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(self._lower.get("cookie", ""))
            except Exception:  # a malformed Cookie header reads as no cookies, as in werkzeug
                jar = SimpleCookie()
            self._cookies = ImmutableMultiDict([(key, morsel.value) for key, morsel in jar.items()])
        return self._cookies

    # -- the body

    @property
    def content_type(self) -> str | None:
        """The Content-Type header."""
        return self._lower.get("content-type")

    @property
    def mimetype(self) -> str:
        """The content type without parameters, lower case."""
        return parse_options_header(self.content_type)[0].lower()

    @property
    def mimetype_params(self) -> dict[str, str]:
        """The content type's parameters, e.g. {"charset": "utf-8"}."""
        return parse_options_header(self.content_type)[1]

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as a number (None when the client did not send one)."""
        raw = self._lower.get("content-length")
        if raw is None:
            return None if not self._body else len(self._body)
        try:
            return max(int(raw), 0)
        except ValueError:
            return None

    @property
    def content_encoding(self) -> str | None:
        return self._lower.get("content-encoding")

    @property
    def content_md5(self) -> str | None:
        return self._lower.get("content-md5")

    @property
    def is_json(self) -> bool:
        """True for application/json and application/*+json, as Flask decides."""
        return is_json_mimetype(self.mimetype)

    @property
    def data(self) -> bytes:
        """The raw body (for every content type: Flask leaves it empty for form posts, this keeps it)."""
        return self._body

    @property
    def stream(self) -> IO[bytes]:
        """The body as a file object."""
        return io.BytesIO(self._body)

    input_stream = stream

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        """The raw body, as bytes or (as_text=True) text."""
        if parse_form_data:
            self._parse_form()
        return self._body.decode(self.charset, self.encoding_errors) if as_text else self._body

    @property
    def json(self) -> Any:
        """The body parsed as JSON (see get_json)."""
        return self.get_json()

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body parsed as JSON; like Flask, only for a JSON content type unless force=True.

        A wrong content type raises UnsupportedMediaType (415), a body that is not JSON BadRequest (400),
        both None with silent=True.
        """
        if cache and self._json is not _UNSET:
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

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Flask's hook for a body that is not JSON: raises BadRequest."""
        raise BadRequest(f"Failed to decode JSON object: {e}")

    @property
    def form(self) -> ImmutableMultiDict:
        """Fields of a urlencoded or multipart form."""
        return self._parse_form()[0]

    @property
    def files(self) -> ImmutableMultiDict:
        """Uploaded files of a multipart form, as FileStorage objects."""
        return self._parse_form()[1]

    @property
    def values(self) -> CombinedMultiDict:
        """Query arguments and form fields together (only the arguments for GET, as in Flask 2+)."""
        if self.method == "GET":
            return CombinedMultiDict([self.args])
        return CombinedMultiDict([self.args, self.form])

    def _parse_form(self) -> tuple[ImmutableMultiDict, ImmutableMultiDict]:
        if self._form is None:
            mt = self.mimetype
            if mt == "application/x-www-form-urlencoded":
                pairs = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
                self._form = (ImmutableMultiDict(pairs), ImmutableMultiDict())
            elif mt == "multipart/form-data":
                fields, files = parse_multipart(self._body, self.mimetype_params.get("boundary"))
                self._form = (ImmutableMultiDict(fields), ImmutableMultiDict(files))
            else:
                self._form = (ImmutableMultiDict(), ImmutableMultiDict())
        return self._form

    # -- WSGI

    @property
    def environ(self) -> dict[str, Any]:
        """A WSGI environ built from the request (what Flask's request.environ holds, as far as it applies)."""
        if self._environ is None:
            host = urlsplit(f"//{self.host}")
            environ: dict[str, Any] = {
                "REQUEST_METHOD": self.method,
                "SCRIPT_NAME": self.script_root,
                "PATH_INFO": self.path,
                "QUERY_STRING": self.query_string.decode("latin-1"),
                "SERVER_NAME": host.hostname or "localhost",
                "SERVER_PORT": str(host.port or (443 if self.is_secure else 80)),
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": self.remote_addr or "",
                "wsgi.url_scheme": self.scheme,
                "wsgi.input": io.BytesIO(self._body),
                "wsgi.errors": io.StringIO(),
                "wsgi.multithread": False,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
                "wsgi.version": (1, 0),
            }
            for name, value in self._lower.items():
                key = name.upper().replace("-", "_")
                if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                    environ[key] = value
                else:
                    environ[f"HTTP_{key}"] = value
            self._environ = environ
        return self._environ

    def close(self) -> None:
        """Close uploaded files (Flask does this at the end of the request)."""
        if self._form is not None:
            for file in self._form[1].values():
                file.close()

    def __enter__(self) -> AMLRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"


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


def parse_multipart(body: bytes, boundary: str | None) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Split a multipart/form-data body into (form fields, files) pairs."""
    fields: list[tuple[str, Any]] = []
    files: list[tuple[str, Any]] = []
    if not boundary:
        return fields, files
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
    return fields, files
