"""`studio-infsrv` / `python -m runtime`: azmlinfsrv's flags and environment, a start-up banner, then the workers."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from runtime import __version__, logs, workers
from runtime.config import (
    DEFAULT_HOST,
    DEFAULT_LIMITS,
    DEFAULT_PORT,
    HTTP_LIMITS,
    INSTANCE_SECRET_ENV,
    ConfigError,
    Settings,
)

logger = logging.getLogger("azmlinfsrv")
NAME = "Studio Inferencing HTTP server"


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"Specified port '{port}' is invalid. Please specify a port within the [1, 65535] range."
        )
    return port


def _worker_count(value: str) -> int:
    count = int(value)
    if count <= 0:
        raise argparse.ArgumentTypeError(
            f"Specified worker count '{count}' is invalid. Please specify a worker count greater than zero."
        )
    return count


def parser() -> argparse.ArgumentParser:
    """The command line, flag for flag azmlinfsrv's (plus --host)."""
    p = argparse.ArgumentParser(prog="studio-infsrv", description=f"{NAME} v{__version__}, a drop-in for azmlinfsrv")
    p.add_argument("--entry_script", help="The relative or absolute path to the scoring script.")
    p.add_argument("--model_dir", help="The model directory, given to the script as AZUREML_MODEL_DIR.")
    p.add_argument("--port", type=_port, help=f"The serving port of the server. Default is {DEFAULT_PORT}.")
    p.add_argument(
        "--worker_count", type=_worker_count, help="The number of worker processes (also WORKER_COUNT). Default is 1."
    )
    p.add_argument(
        "--access_control_allow_origins",
        help='Enable CORS for the specified origins, separated by ",". Example: "microsoft.com, bing.com"',
    )
    p.add_argument("--config_file", help="A JSON file with the server's environment variables.")
    p.add_argument("--host", help=f"The address to listen on. Default is {DEFAULT_HOST} (azmlinfsrv's).")
    for env_name, flag, field in HTTP_LIMITS:
        what = (field[:-2] + " (seconds)" if field.endswith("_s") else field).replace("_", " ")
        p.add_argument(
            f"--{flag}",
            help=f"HTTP limit: {what} (also {env_name}). Default is {getattr(DEFAULT_LIMITS, field):g}.",
        )
    # accepted so that azmlinfsrv command lines keep working; Application Insights is not part of this server
    p.add_argument("--appinsights_instrumentation_key", help=argparse.SUPPRESS)
    p.add_argument("--health_port", type=_port, help=argparse.SUPPRESS)
    return p


def apply_to_environment(args: argparse.Namespace) -> None:
    """Write the flags into the environment, as azmlinfsrv does, so the scoring script sees the same variables."""
    env = os.environ
    env.setdefault("AML_APP_ROOT", os.getcwd())
    if args.entry_script:
        env["AZUREML_ENTRY_SCRIPT"] = os.path.realpath(args.entry_script)
    if args.model_dir:
        env["AZUREML_MODEL_DIR"] = args.model_dir
    if args.worker_count is not None:
        env["WORKER_COUNT"] = str(args.worker_count)
    env.setdefault("WORKER_COUNT", "1")
    # azmlinfsrv ignores SERVER_PORT from outside: only the flag (or the default) decides the port.
    env["SERVER_PORT"] = str(args.port or DEFAULT_PORT)
    if args.host:
        env["STUDIO_INFSRV_HOST"] = args.host
    if args.access_control_allow_origins is not None:
        env["AML_CORS_ORIGINS"] = args.access_control_allow_origins
    for env_name, flag, _ in HTTP_LIMITS:
        value = getattr(args, flag)
        if value is not None:
            env[env_name] = value  # checked with the environment's value, by Settings.from_env
    if args.config_file:
        env["AZUREML_CONFIG_FILE"] = os.path.realpath(args.config_file)
    if env.get("SERVER_VERSION_LOG_RESPONSE_ENABLED", "true").lower() == "true":
        env.setdefault("HTTP_X_MS_SERVER_VERSION", f"studio-infsrv/{__version__}")


def banner(settings: Settings) -> str:
    """The start-up text: version, Server Settings and Server Routes blocks like azmlinfsrv's."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"{host}:{settings.port}"
    settings_lines = {
        "Entry Script Name": settings.entry_script or "None (MLflow no-code serving when the model has an MLmodel)",
        "Model Directory": settings.model_dir or None,
        "Config File": os.environ.get("AZUREML_CONFIG_FILE"),
        "Worker Count": settings.worker_count,
        "Server Host": settings.host,
        "Server Port": settings.port,
        "Scoring Timeout (ms)": settings.scoring_timeout_ms,
        "Application Insights Enabled": "false",
        "Inferencing HTTP server version": settings.server_version or None,
        "CORS for the specified origins": ", ".join(settings.cors_origins) or None,
    }
    lines = ["", f"{NAME} v{__version__} (a drop-in for azmlinfsrv)", "", "", "Server Settings", "---------------"]
    lines += [f"{key}: {value}" for key, value in settings_lines.items()]
    lines += [
        "",
        "",
        "Server Routes",
        "---------------",
        f"Liveness Probe: GET   {base}/",
        f"Score:          POST  {base}/score",
        f"Swagger:        GET   {base}/swagger.json?version=2|3|3.1",
        f"Health (OIP):   GET   {base}/v2/health/live  {base}/v2/health/ready",
        f"Metrics:        GET   {base}/metrics",
        "",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, print the banner and serve; exits 1 on bad flags, 3 when the script cannot start."""
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as ex:
        # azmlinfsrv exits 1 on bad flags (argparse would say 2)
        sys.exit(0 if ex.code == 0 else 1)
    apply_to_environment(args)
    logs.configure(os.environ.get("AZUREML_LOG_LEVEL", "INFO"))
    if not (os.environ.get("AZUREML_ENTRY_SCRIPT") or os.environ.get("AZUREML_MODEL_DIR") or args.config_file):
        logger.error(
            "Either provide an entry_script using --entry_script, a model with --model_dir (MLflow "
            "no-code serving) or a configuration file using --config_file"
        )
        sys.exit(1)
    if args.appinsights_instrumentation_key:
        logger.warning("Application Insights is not supported by this server; the instrumentation key is ignored.")
    try:
        settings = Settings.from_env()
    except ConfigError as ex:
        logger.critical(f"Configuration Error: {ex}")
        sys.exit(3)
    os.environ.pop(INSTANCE_SECRET_ENV, None)  # the scoring script has no use for it
    sys.stdout.write(banner(settings))
    sys.stdout.flush()
    sys.exit(workers.run(settings))
