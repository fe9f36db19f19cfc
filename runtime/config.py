"""Server settings, read once from the environment (the CLI writes its flags into the environment first)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from runtime.http11 import Limits

DEFAULT_PORT = 5001
DEFAULT_HOST = "0.0.0.0"
DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
# The HTTP limits (runtime/http11.py): (environment variable, flag, Limits field). The keep-alive default is
# longer than the gateway's own: the gateway keeps pooled connections to instances.
HTTP_LIMITS = (
    ("STUDIO_INFSRV_MAX_REQUEST_LINE_BYTES", "max_request_line_bytes", "max_request_line_bytes"),
    ("STUDIO_INFSRV_MAX_REQUEST_HEAD_BYTES", "max_request_head_bytes", "max_head_bytes"),
    ("STUDIO_INFSRV_MAX_REQUEST_HEADERS", "max_request_headers", "max_headers"),
    ("STUDIO_INFSRV_REQUEST_HEAD_TIMEOUT_S", "request_head_timeout_s", "head_timeout_s"),
    ("STUDIO_INFSRV_REQUEST_BODY_TIMEOUT_S", "request_body_timeout_s", "body_timeout_s"),
    ("STUDIO_INFSRV_KEEP_ALIVE_TIMEOUT_S", "keep_alive_timeout_s", "keep_alive_s"),
    ("STUDIO_INFSRV_MAX_CONNECTIONS", "max_connections", "max_connections"),
)
DEFAULT_LIMITS = Limits(keep_alive_s=60.0)

# Keys azmlinfsrv accepts from a config.json (AZUREML_CONFIG_FILE or config.json in the app root).
CONFIG_FILE_KEYS = (
    "AML_APP_ROOT",
    "AZUREML_SOURCE_DIRECTORY",
    "AZUREML_ENTRY_SCRIPT",
    "SERVICE_NAME",
    "WORKSPACE_NAME",
    "SERVICE_PATH_PREFIX",
    "SERVICE_VERSION",
    "SCORING_TIMEOUT_MS",
    "AZUREML_LOG_LEVEL",
    "AML_CORS_ORIGINS",
    "AZUREML_MODEL_DIR",
)


INSTANCE_SECRET_ENV = "STUDIO_INSTANCE_SECRET"
INSTANCE_SECRET_HEADER = "x-studio-instance-secret"  # gateway/wire.py names the same header


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """What one worker needs to know; built by `from_env`."""

    app_root: Path
    entry_script: Path | None
    source_dir: Path | None
    model_dir: str
    host: str
    port: int
    worker_count: int
    scoring_timeout_ms: int
    log_level: str
    cors_origins: tuple[str, ...]
    service_name: str
    service_version: str
    service_path_prefix: str
    server_version: str
    limits: Limits = DEFAULT_LIMITS
    # Set by the studio's local backend: every request but the liveness probe must carry it (the gateway does).
    instance_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the Azure environment variables (AML_APP_ROOT, AZUREML_ENTRY_SCRIPT, SCORING_TIMEOUT_MS, ...)."""
        env = dict(os.environ if env is None else env)
        for key, value in _config_file_values(env).items():
            env.setdefault(key, value)  # the environment wins over config.json, as in azmlinfsrv
        app_root = Path(env.get("AML_APP_ROOT") or os.getcwd())
        entry = env.get("AZUREML_ENTRY_SCRIPT")
        source = env.get("AZUREML_SOURCE_DIRECTORY")
        origins = env.get("AML_CORS_ORIGINS") or ""
        return cls(
            app_root=app_root,
            # AZUREML_ENTRY_SCRIPT is relative to the app root; an absolute path stays as it is.
            entry_script=app_root / entry if entry else None,
            source_dir=app_root / source if source else None,
            model_dir=env.get("AZUREML_MODEL_DIR", ""),
            host=env.get("STUDIO_INFSRV_HOST") or DEFAULT_HOST,
            port=_int(env, "SERVER_PORT", DEFAULT_PORT, low=1, high=65535),
            worker_count=_int(env, "WORKER_COUNT", 1, low=1),
            scoring_timeout_ms=_int(env, "SCORING_TIMEOUT_MS", DEFAULT_SCORING_TIMEOUT_MS, low=1),
            log_level=(env.get("AZUREML_LOG_LEVEL") or "INFO").upper(),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            service_name=env.get("SERVICE_NAME") or "ML service",
            service_version=env.get("SERVICE_VERSION") or "1.0",
            service_path_prefix=env.get("SERVICE_PATH_PREFIX") or "",
            server_version=env.get("HTTP_X_MS_SERVER_VERSION", ""),
            limits=_limits(env),
            instance_secret=env.get(INSTANCE_SECRET_ENV, ""),
        )


def _int(env: dict[str, str], name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def _limits(env: dict[str, str]) -> Limits:
    values: dict[str, float] = {}
    for name, _, attribute in HTTP_LIMITS:
        default = getattr(DEFAULT_LIMITS, attribute)
        if isinstance(default, float):
            values[attribute] = _float(env, name, default)
        else:
            values[attribute] = _int(env, name, default, low=1)
    return Limits(**values)  # type: ignore[arg-type]


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw}")
    return value


def _config_file_values(env: dict[str, str]) -> dict[str, str]:
    candidates = [env.get("AZUREML_CONFIG_FILE")]
    if env.get("AML_APP_ROOT"):
        candidates.append(os.path.join(env["AML_APP_ROOT"], "config.json"))
    for path in candidates:
        if path and os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            return {k: str(v) for k, v in data.items() if k in CONFIG_FILE_KEYS and v is not None}
    return {}
