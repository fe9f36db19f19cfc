"""The studio's REST API over httpx: JSON in and out, every failure turned into one CliError line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import httpx

from cli.config import Config
from cli.errors import ApiError, CliError

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# Uploads of large models may take a while; only a stalled connection should fail them.
UPLOAD_TIMEOUT = httpx.Timeout(None, connect=10.0)


def not_reachable(url: str, exc: Exception) -> CliError:
    return CliError(
        f"the studio is not reachable at {url} ({type(exc).__name__}: {exc or 'no answer'}); "
        "start it with `studio up`, or point the CLI elsewhere with --studio-url / STUDIO_URL"
    )


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's one-line message (and field) from its error body, else the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("message") or response.reason_phrase), error.get("field")
    request = response.request
    text = f"HTTP {response.status_code} {response.reason_phrase} for {request.method} {request.url.path}"
    if response.status_code >= 500:
        return text + " (a fault in the studio, not in your input: its log, e.g. `studio up`'s output, says more)", None
    is_html = "html" in response.headers.get("content-type", "")
    snippet = response.text.strip().splitlines()[0][:200] if response.text.strip() and not is_html else ""
    return text + (f": {snippet}" if snippet else ""), None


class Studio:
    """A signed-in session with the studio's REST API (`<url>/api/v1/`)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.http = httpx.Client(
            base_url=f"{config.url}/api/v1/",
            headers={"Authorization": f"Token {config.token}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, text: bool = False, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON answer (the text when `text`), None for 204; ApiError for any error."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise not_reachable(self.config.url, exc) from None
        if response.status_code == 401:
            message, _ = error_message(response)
            raise ApiError(
                f"the studio at {self.config.url} refused the API token from {self.config.source} ({message}); "
                "run `studio up` again to refresh it or pass --token",
                status=401,
            )
        if response.status_code >= 400:
            message, field = error_message(response)
            raise ApiError(message, status=response.status_code, field=field)
        if response.status_code == 204 or not response.content:
            return None
        if text:
            return response.text
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{method} {response.url} answered with something that is not JSON; is {self.config.url} a studio?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any, *, if_match: str | None = None, params: dict[str, Any] | None = None) -> Any:
        """PATCH; with `if_match` (an etag) the studio refuses it with 412 if the object changed since."""
        headers = {"If-Match": f'"{if_match.strip().strip(chr(34))}"'} if if_match else None
        return self.request("PATCH", path, json=body, headers=headers, params=params)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def list(self, path: str, **params: Any) -> list[Any]:
        """Every row of a paginated list."""
        return list(self.iterate(path, **params))

    def iterate(self, path: str, **params: Any) -> Iterator[Any]:
        offset = int(params.pop("offset", 0) or 0)
        while True:
            page = self.get(path, **params, offset=offset, limit=100)
            rows = page.get("results", []) if isinstance(page, dict) else []
            yield from rows
            offset += len(rows)
            if not rows or not page.get("next"):
                return

    def upload(self, *, stream: BinaryIO, name: str, kind: str) -> dict[str, Any]:
        """Send a file (or a folder zipped) to `POST uploads`; returns the upload's id and digest."""
        files = {"file": (name if kind == "file" else f"{name}.zip", stream, "application/octet-stream")}
        return self.request("POST", "uploads", files=files, data={"kind": kind, "name": name}, timeout=UPLOAD_TIMEOUT)
