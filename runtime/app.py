"""The routes of azmlinfsrv (`/`, `/score`, `/swagger.json`) plus `/v2/health/*` and `/metrics`."""

from __future__ import annotations

import collections.abc
import hmac
import json
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runtime import compat, logs
from runtime.config import INSTANCE_SECRET_HEADER, Settings
from runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.metrics import Metrics
from runtime.request import AMLRequest
from runtime.response import AMLResponse
from runtime.scoring import InputError, Runner, ScoringTimeout, ScriptError, UnsupportedMethod, UserScript
from runtime.server import Reply
from runtime.swagger import Swagger, SwaggerError

logger = logging.getLogger("azmlinfsrv")

HEADER_LIMIT = 100
JSON = "application/json"
HTML = "text/html; charset=utf-8"
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
# werkzeug's wording, which azmlinfsrv passes through for unknown routes and methods
NOT_FOUND_MESSAGE = (
    "The requested URL was not found on the server. If you entered the URL manually please check "
    "your spelling and try again."
)
METHOD_NOT_ALLOWED_MESSAGE = "The method is not allowed for the requested URL."

_NOT_FOUND = json.dumps({"message": NOT_FOUND_MESSAGE}).encode()
_METHOD_NOT_ALLOWED = json.dumps({"message": METHOD_NOT_ALLOWED_MESSAGE}).encode()
_FAILED_FALSE = ("x-ms-run-function-failed", "False")
_GATEWAY_ONLY = json.dumps(
    {"message": "this instance answers only the studio's gateway; send requests to the endpoint's scoring URI"}
).encode()


def error(status: int, message: str, *, run_failed: bool = False) -> Reply:
    """A JSON error as azmlinfsrv sends it: `{"message": ...}` and x-ms-run-function-failed."""
    return Reply(
        status,
        [("Content-Type", JSON), ("x-ms-run-function-failed", str(run_failed))],
        json.dumps({"message": message}).encode(),
    )


class ScoringApp:
    """Answers one worker's requests for a loaded, initialised scoring script."""

    def __init__(self, settings: Settings, script: UserScript, swagger: Swagger) -> None:
        self.settings = settings
        self.script = script
        self.swagger = swagger
        self.metrics = Metrics()
        self.runner = Runner(settings.scoring_timeout_ms)
        self.server_version = settings.server_version
        self.cors_origins = settings.cors_origins
        self.secret = settings.instance_secret.encode()
        # path -> (methods, handler)
        self.routes: dict[str, tuple[frozenset[str], Callable[..., Any]]] = {
            "/": (frozenset({"GET", "HEAD"}), self.health),
            "/score": (frozenset({"GET", "POST", "OPTIONS", "HEAD"}), self.score),
            "/swagger.json": (frozenset({"GET", "HEAD"}), self.swagger_json),
            "/v2/health/live": (frozenset({"GET", "HEAD"}), self.live),
            "/v2/health/ready": (frozenset({"GET", "HEAD"}), self.ready),
            "/metrics": (frozenset({"GET", "HEAD"}), self.metrics_text),
        }

    def __call__(self, request: AMLRequest) -> Reply:
        """Route, check the trace headers, answer, then log and count the request."""
        start = time.perf_counter()
        self.metrics.in_flight += 1
        path = request.path
        route = self.routes.get(path)
        try:
            if self.secret and not self._from_gateway(request, path):
                reply = Reply(403, [("Content-Type", JSON), _FAILED_FALSE], _GATEWAY_ONLY)
            elif route is None:
                reply = Reply(404, [("Content-Type", JSON), _FAILED_FALSE], _NOT_FOUND)
            elif request.method not in route[0]:
                reply = Reply(405, [("Content-Type", JSON), _FAILED_FALSE], _METHOD_NOT_ALLOWED)
            else:
                reply = self._traced(request, route[1])
        finally:
            self.metrics.in_flight -= 1
        elapsed = time.perf_counter() - start
        self.metrics.observe(request.method, path if route else "other", reply.status, elapsed)
        if path != "/" or request.method != "GET":  # liveness probes would drown the log, as in azmlinfsrv
            query = f"?{request.query_string.decode('latin-1')}" if request.query_string else ""
            size = "N/A" if reply.stream is not None else len(reply.body)
            logs.access(f"{request.method} {path}{query} {reply.status} {elapsed * 1000:.3f}ms {size}")
        return reply

    def _from_gateway(self, request: AMLRequest, path: str) -> bool:
        """The liveness probe is open; anything else needs the secret the studio's gateway sends."""
        if path == "/" and request.method in ("GET", "HEAD"):
            return True
        given = request.headers.get(INSTANCE_SECRET_HEADER, "").encode()
        return hmac.compare_digest(given, self.secret)

    def _traced(self, request: AMLRequest, handler: Callable[..., Any]) -> Reply:
        # The request ids of azmlinfsrv's before_request/after_request hooks, with their 431 answers.
        headers = request.headers
        request_id = headers.get("x-request-id")
        if request_id is None:
            request_id = str(uuid.uuid4())
        legacy_id = client_id = ""
        if len(request_id) > HEADER_LIMIT:
            reply = error(431, f"x-request-id must not exceed {HEADER_LIMIT} characters")
            request_id = ""
        else:
            legacy_id = headers.get("x-ms-request-id", "")
            client_id = headers.get("x-ms-client-request-id", "")
            if legacy_id:
                logger.warning(
                    "x-ms-request-id header has been deprecated and will be removed from future versions "
                    "of the server. Please use x-ms-client-request-id."
                )
                client_id = client_id or legacy_id
            else:
                legacy_id = client_id or request_id
            if len(legacy_id) > HEADER_LIMIT or len(client_id) > HEADER_LIMIT:
                reply = error(
                    431, f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters"
                )
                legacy_id = client_id = ""
            else:
                reply = handler(request)
        out = reply.headers
        if self.server_version:
            out.append(("x-ms-server-version", self.server_version))
        if request_id:
            out.append(("x-request-id", request_id))
        if legacy_id:
            out.append(("x-ms-request-id", legacy_id))
        if client_id:
            out.append(("x-ms-client-request-id", client_id))
        trace_id = headers.get("traceid")
        if trace_id is not None:
            out.append(("TraceId", trace_id))
        if self.cors_origins:
            self._cors(request, out)
        return reply

    def _cors(self, request: AMLRequest, out: list[tuple[str, str]]) -> None:
        origin = request.headers.get("origin")
        if not origin or request.method not in ("GET", "POST", "OPTIONS", "HEAD"):
            return
        if "*" in self.cors_origins:
            out.append(("Access-Control-Allow-Origin", "*"))
        elif origin in self.cors_origins:
            out.append(("Access-Control-Allow-Origin", origin))
            out.append(("Vary", "Origin"))
        else:
            return
        if request.method == "OPTIONS" and request.headers.get("access-control-request-method"):
            out.append(("Access-Control-Allow-Methods", "GET, POST"))
            asked = request.headers.get("access-control-request-headers")
            if asked:
                out.append(("Access-Control-Allow-Headers", asked))

    # -- handlers

    def health(self, request: AMLRequest) -> Reply:
        """GET /: liveness, `Healthy` once init() has run (the server listens only after it)."""
        return Reply(200, [("Content-Type", HTML)], b"Healthy")

    def live(self, request: AMLRequest) -> Reply:
        """Open Inference Protocol liveness."""
        return Reply(200, [("Content-Type", JSON)], b'{"live": true}')

    def ready(self, request: AMLRequest) -> Reply:
        """Open Inference Protocol readiness."""
        return Reply(200, [("Content-Type", JSON)], b'{"ready": true}')

    def metrics_text(self, request: AMLRequest) -> Reply:
        """Prometheus counters of this worker."""
        return Reply(200, [("Content-Type", METRICS_CONTENT_TYPE)], self.metrics.render())

    def swagger_json(self, request: AMLRequest) -> Reply:
        """The swagger document for ?version=2|3|3.1."""
        try:
            body = self.swagger.body(request.args.get("version"))
        except SwaggerError as ex:
            return error(404, str(ex))
        return Reply(200, [("Content-Type", JSON), _FAILED_FALSE], body)

    def score(self, request: AMLRequest) -> Reply:
        """Call run() with the request as the script wants it and turn its result into the answer."""
        script = self.script
        try:
            kwargs = script.arguments(request)
        except UnsupportedMethod:
            if request.method == "OPTIONS":
                return Reply(200, [("Content-Type", HTML), _FAILED_FALSE], b"")
            return error(405, "Method not allowed")
        except InputError as ex:
            return error(ex.status, str(ex))
        headers = request.headers.to_dict() if script.wants_headers else None
        try:
            result, elapsed_ms = self.runner.call(script.call, kwargs, headers)
        except ScoringTimeout as ex:
            logger.error(f"Encountered Exception: {''.join(traceback.format_exception(ex))}")
            return error(500, str(ex), run_failed=True)
        except Exception:
            logger.error(f"Encountered Exception: {traceback.format_exc()}")
            return error(500, RUN_FAILED_MESSAGE, run_failed=True)
        exec_ms = ("x-ms-run-fn-exec-ms", f"{elapsed_ms:.3f}")
        if isinstance(result, AMLResponse):
            logger.info("run() output is HTTP Response")
            return self._custom(result, exec_ms)
        if isinstance(result, collections.abc.Iterator):
            return Reply(200, [("Content-Type", HTML), _FAILED_FALSE, exec_ms], stream=self._chunks(result))
        try:
            body = b"{}" if result is None else json.dumps(result).encode()
        except Exception:
            logger.error(f"Encountered Exception: {traceback.format_exc()}")
            return error(500, INTERNAL_ERROR_MESSAGE)
        return Reply(200, [("Content-Type", JSON), _FAILED_FALSE, exec_ms], body)

    def _custom(self, response: AMLResponse, exec_ms: tuple[str, str]) -> Reply:
        # Content-Length is the server's to write (from the body it sends), as Flask's server does.
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        if response.status_code >= 500:
            headers = [(k, "True" if k.lower() == "x-ms-run-function-failed" else v) for k, v in headers]
        headers.append(exec_ms)
        body = response.body
        if isinstance(body, bytes | bytearray | memoryview):
            return Reply(response.status_code, headers, bytes(body))
        if isinstance(body, collections.abc.Iterable):
            return Reply(response.status_code, headers, stream=self._chunks(iter(body)))
        return Reply(response.status_code, headers, str(body).encode())

    def _chunks(self, iterator: Iterator[Any]) -> Iterator[bytes]:
        # The iterator is user code (a generator, often): each step gets the scoring timeout too.
        end = object()
        while True:
            item = self.runner.call(next, iterator, end)
            if item is end:
                return
            if isinstance(item, str):
                yield item.encode()
            elif isinstance(item, bytes | bytearray):
                yield bytes(item)
            else:
                yield json.dumps(item).encode()


def build_app(settings: Settings) -> ScoringApp:
    """Make the user's code importable, load the script (or the MLflow model), run init(), prepare swagger."""
    compat.install()
    for folder in (settings.app_root, settings.source_dir):
        if folder is not None and str(folder) not in sys.path:
            sys.path.append(str(folder))
    script = load_script(settings)
    script.invoke_init()
    swagger = Swagger(
        settings.app_root,
        script.run,
        service_name=settings.service_name,
        service_version=settings.service_version,
        path_prefix=settings.service_path_prefix,
    )
    return ScoringApp(settings, script, swagger)


def load_script(settings: Settings) -> UserScript:
    """The user's scoring script, main.py in the app root, or MLflow no-code serving of the model."""
    entry = settings.entry_script
    if entry is None and (settings.app_root / "main.py").is_file():
        entry = settings.app_root / "main.py"
    if entry is not None:
        if not entry.is_file():
            raise ScriptError(f"No such file or directory: the entry script {entry} does not exist.")
        # Helper modules next to the script import as they would in Azure's /var/azureml-app.
        if str(entry.parent) not in sys.path:
            sys.path.append(str(entry.parent))
        return UserScript.from_file(entry)
    from runtime import mlflow_model

    model_path = mlflow_model.find_model(Path(settings.model_dir)) if settings.model_dir else None
    if model_path is None:
        raise ScriptError(
            "No scoring script: pass --entry_script (or AZUREML_ENTRY_SCRIPT), or point --model_dir "
            "at an MLflow model (a folder with an MLmodel file) to serve it without code."
        )
    return mlflow_model.script_for(model_path)
