"""Loading the user's scoring script and calling its init() and run() the way azmlinfsrv does."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from runtime import request as aml_request
from runtime.request import AMLRequest

logger = logging.getLogger("azmlinfsrv.user_script")


class ScriptError(Exception):
    """The script cannot be served: its import or init() failed, or init()/run() is missing or unusable."""


class InputError(Exception):
    """The request does not fit what run() takes; `status` is the HTTP status to answer with."""

    status = 400


class BadInput(InputError):
    """400: an empty, malformed or incomplete body."""


class UnsupportedInput(InputError):
    """415: a body that is not declared as JSON where JSON is required."""

    status = 415


class UnsupportedMethod(InputError):
    """The method has no meaning for run() (OPTIONS gets a 200 without calling it, others a 405)."""

    status = 405


class ScoringTimeout(Exception):
    """run() took longer than SCORING_TIMEOUT_MS."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms


def schema_util_module() -> ModuleType | None:
    """inference_schema.schema_util, or None when the environment does not have inference-schema."""
    # inference-schema is the user's dependency, not ours: use it only when the environment has it.
    try:
        from inference_schema import schema_util
    except ImportError:
        return None
    return schema_util


def is_schema_decorated(func: Callable[..., Any]) -> bool:
    """True when run() carries inference-schema's @input_schema/@output_schema."""
    util = schema_util_module()
    return bool(util and util.is_schema_decorated(func))


class UserScript:
    """A scoring script's init() and run(), and how a request becomes run()'s arguments."""

    def __init__(self, init: Callable[[], Any], run: Callable[..., Any], origin: str) -> None:
        self.init = init
        self.run = run
        self.origin = origin
        self._analyse_run()

    @classmethod
    def from_file(cls, path: Path) -> UserScript:
        """Import the script at `path` (as azmlinfsrv does, under the module name `entry_module`)."""
        aml_request.reset_rawhttp()
        try:
            spec = importlib.util.spec_from_file_location("entry_module", str(path))
            if spec is None or spec.loader is None:
                raise ScriptError(f"Cannot import the scoring script {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except ScriptError:
            raise
        except BaseException as ex:
            raise ScriptError(f"Failed to import the scoring script {path}: {ex!r}") from ex
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScriptError(f"User script at {path} does not have a {name}() function defined.")
        run = module.run
        # Azure's generated driver scripts forward to the real script; call its run() directly as azmlinfsrv does.
        driver = getattr(module, "driver_module", None)
        if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)):
            run = driver.run
        logger.info(f"Found user script at {path}")
        return cls(module.init, run, str(path))

    def _analyse_run(self) -> None:
        params = list(inspect.signature(self.run).parameters.values())
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise ScriptError("run() cannot accept positional-only arguments, *args, or **kwargs.")
        self.wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            if self.wants_headers:
                raise ScriptError('run() needs to accept an argument other than "request_headers".')
            raise ScriptError("run() needs to accept an argument for input data.")
        self.params = params
        self.first = params[0].name
        raw = aml_request.rawhttp_requested() or getattr(self.run, "__aml_rawhttp__", False)
        decorated = is_schema_decorated(self.run)
        if raw and decorated:
            raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
        if raw:
            self.mode = "raw"
            logger.info("run() is decorated with @rawhttp. Server will invoke it with the request object.")
        elif decorated:
            self.mode = "schema"
            names = ", ".join(p.name for p in params)
            logger.info(
                f"run() is decorated with @input_schema. Server will invoke it with the following arguments: {names}."
            )
        else:
            self.mode = "text"
            logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")

    def invoke_init(self) -> None:
        """Call init(); any exception becomes a ScriptError."""
        logger.info("Invoking user's init function")
        try:
            self.init()
        except BaseException as ex:
            raise ScriptError(f"init() raised {ex!r}") from ex
        logger.info("Users's init has completed successfully")

    def arguments(self, request: AMLRequest) -> dict[str, Any]:
        """run()'s keyword arguments for this request, or an InputError with Azure's message."""
        if self.mode == "raw":
            return {self.first: request}
        method = request.method
        if method == "GET":
            params = _query_parameters(request)
            if self.mode == "text":
                return {self.first: json.dumps(params)}
            return self._extract(params)
        if method != "POST":
            raise UnsupportedMethod(f"Unsupported HTTP method: {method}")
        body = request.data
        if self.mode == "text":
            try:
                return {self.first: str(body, "utf-8")}
            except UnicodeDecodeError as ex:
                raise BadInput(f"Input cannot be decoded as UTF-8: {ex}") from None
        if not request.is_json:
            raise UnsupportedInput("Expects Content-Type to be application/json")
        try:
            parsed = json.loads(body)
        except ValueError as ex:
            if body:
                raise BadInput(f"POST body could not be decoded as JSON: {ex}") from None
            raise BadInput("POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(parsed, dict):
            raise BadInput("POST body should be a JSON dictionary.")
        return self._extract(parsed)

    def _extract(self, body: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for param in self.params:
            value = body.get(param.name, param.default)
            if value is inspect.Parameter.empty:
                raise BadInput(f"A value is not provided for the {param.name!r} parameter.")
            values[param.name] = value
        return values

    def call(self, kwargs: dict[str, Any], headers: dict[str, str] | None) -> tuple[Any, float]:
        """Run run() with the arguments; returns (result, milliseconds)."""
        start = time.perf_counter()
        if self.wants_headers:
            result = self.run(**kwargs, request_headers=headers)
        else:
            result = self.run(**kwargs)
        return result, (time.perf_counter() - start) * 1000


def _query_parameters(request: AMLRequest) -> dict[str, Any]:
    # azmlinfsrv reads GET parameters as JSON values; a repeated key becomes a list.
    parsed: dict[str, Any] = {}
    for key, values in request.args.lists():
        decoded = [_json_or_text(v) for v in values]
        parsed[key] = decoded[0] if len(decoded) == 1 else decoded
    return parsed


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


class _Alarm(BaseException):
    """Raised by SIGALRM inside a run() that went past the timeout."""

    # A BaseException, so that an `except Exception` in the scoring script cannot swallow it.


def _on_alarm(signum: int, frame: object) -> None:
    raise _Alarm


class Runner:
    """Calls user code on the worker's main thread with SCORING_TIMEOUT_MS, as azmlinfsrv's sync worker does.

    One call at a time per worker, in the event loop's thread: no thread hand-off and no GIL contention on the
    hot path (measured: about twice the throughput of running run() on a helper thread). The timeout is a
    SIGALRM that raises inside run(), so a timed-out run() stops and the worker goes on serving. Python code
    and sleeps are interrupted at once; a long call inside C code is interrupted when it returns to Python.
    """

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._timeout_s = timeout_ms / 1000
        signal.signal(signal.SIGALRM, _on_alarm)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args); ScoringTimeout when it runs past the timeout."""
        try:
            signal.setitimer(signal.ITIMER_REAL, self._timeout_s)
            try:
                return fn(*args)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm as alarm:
            # chained, so the log shows where run() was when the time ran out
            raise ScoringTimeout(self.timeout_ms) from alarm
