"""The verbs: each takes the parsed flags and a signed-in Studio, and returns what to print.

They mirror `az ml model|environment|online-endpoint|online-deployment` and talk to the studio only
through its REST API (docs/api.md).
"""

from __future__ import annotations

import copy
import sys
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cli.client import Studio
from cli.errors import ApiError, CliError
from cli.files import Uploader, YamlFile, apply_sets, load_yaml, prefixed
from cli.wait import deployment_path, events_so_far, progress, wait_for_deployment, wait_until_gone

INVOKE_TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # above the 180 s maximum request_timeout_ms


class Raw(str):
    """Text printed as is (logs, a scoring answer), not as JSON."""


def _send(label: str | None, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ApiError as exc:
        raise prefixed(label, exc) from None


def _source(args: Namespace) -> YamlFile | None:
    return load_yaml(args.file) if getattr(args, "file", None) else None


def _document(args: Namespace, flags: dict[str, Any]) -> tuple[YamlFile | None, dict[str, Any]]:
    """The YAML document (or an empty one) with `--set` applied, then the flags that name its keys.

    This is the one place a document is put together, for every create and update: as with `az ml`, nothing
    (endpoint name, paths, references) is read from it before `--set` has been applied.
    """
    source = _source(args)
    doc = copy.deepcopy(source.doc) if source else {}
    apply_sets(doc, getattr(args, "set", None))
    for key, value in flags.items():
        if value is not None:
            doc[key] = value
    return source, doc


def _changes_to(current: dict[str, Any], args: Namespace) -> dict[str, Any]:
    """`update --set` without a file: the server's view of the object, edited; only the keys it touched."""
    edited = copy.deepcopy(current)
    touched = apply_sets(edited, getattr(args, "set", None))
    return {key: edited[key] for key in touched}


def _uploader(studio: Studio, source: YamlFile | None) -> Uploader:
    return Uploader(
        studio=studio, folder=source.folder if source else Path.cwd(), label=source.label if source else None
    )


def _absolute(value: str | None) -> str | None:
    # Paths given as flags are relative to the current folder, not to the YAML file's.
    return str(Path(value).expanduser().resolve()) if value else None


def _required_name(args: Namespace, doc: dict[str, Any] | None = None, flag: str = "--name") -> str:
    name = getattr(args, "name", None) or (doc or {}).get("name")
    if not name:
        raise CliError(f"{flag}: required (or a name in the YAML file given with --file)")
    return str(name)


# --- models and environments ---


def model_create(args: Namespace, studio: Studio) -> Any:
    """Register a model version from a YAML file and/or flags; its file or folder is uploaded first."""
    flags = {
        "name": args.name,
        "version": args.version,
        "path": _absolute(args.path),
        "type": args.type,
        "description": args.description,
    }
    source, doc = _document(args, flags)
    label = source.label if source else None
    _uploader(studio, source).path(doc, "path", "path")
    return _send(label, lambda: studio.post("models", doc))


def model_list(args: Namespace, studio: Studio) -> Any:
    """Every registered model version (of one name with --name)."""
    return studio.list("models", name=args.name)


def model_show(args: Namespace, studio: Studio) -> Any:
    """One model version (the latest unless --version is given)."""
    return studio.get(f"models/{args.name}/versions/{args.version or args.label or 'latest'}")


def environment_create(args: Namespace, studio: Studio) -> Any:
    """Register an environment version; a conda file is read and sent inline."""
    flags = {
        "name": args.name,
        "version": args.version,
        "image": args.image,
        "conda_file": _absolute(args.conda_file),
        "description": args.description,
    }
    source, doc = _document(args, flags)
    label = source.label if source else None
    _uploader(studio, source).environment(doc)
    return _send(label, lambda: studio.post("environments", doc))


def environment_list(args: Namespace, studio: Studio) -> Any:
    """Every registered environment version (of one name with --name)."""
    return studio.list("environments", name=args.name)


def environment_show(args: Namespace, studio: Studio) -> Any:
    """One environment version (the latest unless --version is given)."""
    return studio.get(f"environments/{args.name}/versions/{args.version or args.label or 'latest'}")


# --- online endpoints ---


def parse_percentages(raw: str, flag: str) -> dict[str, Any]:
    """`"blue=90 green=10"` (spaces or commas) → {"blue": 90, "green": 10}; the server checks the numbers."""
    result: dict[str, Any] = {}
    for pair in raw.replace(",", " ").split():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f'{flag}: expected deployment=percent pairs such as "blue=90 green=10", got {pair!r}')
        result[name] = int(value) if value.strip().isdigit() else value
    return result


def _endpoint_path(name: str) -> str:
    return f"online-endpoints/{name}"


LOCAL_ROUTING = "a local endpoint's one deployment takes every request, with no key"


def _endpoint_for(args: Namespace, studio: Studio, name: str) -> dict[str, Any]:
    """The endpoint; with --local it must be a local one, as `az ml ... --local` only sees local endpoints."""
    endpoint: dict[str, Any] = studio.get(_endpoint_path(name))
    if getattr(args, "local", False) and not endpoint.get("local"):
        raise CliError(
            f"online endpoint {name!r} is not a local endpoint (it was created without --local); drop --local"
        )
    return endpoint


def _not_locally(args: Namespace, what: str) -> None:
    if getattr(args, "local", False):
        raise CliError(f"{what} is not supported for local endpoints ({LOCAL_ROUTING})")


def endpoint_create(args: Namespace, studio: Studio) -> Any:
    """Create an online endpoint from a YAML file and/or flags."""
    flags = {"name": args.name, "auth_mode": args.auth_mode, "local": True if args.local else None}
    source, doc = _document(args, flags)
    return _send(source.label if source else None, lambda: studio.post("online-endpoints", doc))


def endpoint_update(args: Namespace, studio: Studio) -> Any:
    """Change traffic, mirroring, description, tags or auth mode."""
    if args.traffic is not None:
        _not_locally(args, "--traffic")
    if args.mirror_traffic is not None:
        _not_locally(args, "--mirror-traffic")
    if args.file:
        source, changes = _document(args, {"name": args.name})
        name = _required_name(args, changes)
        if args.local:
            _endpoint_for(args, studio, name)
    else:
        source = None
        name = _required_name(args)
        current = _endpoint_for(args, studio, name) if args.set or args.local else {}
        changes = _changes_to(current, args) if args.set else {}
    if args.traffic is not None:
        changes["traffic"] = parse_percentages(args.traffic, "--traffic")
    if args.mirror_traffic is not None:
        changes["mirror_traffic"] = parse_percentages(args.mirror_traffic, "--mirror-traffic")
    if not changes:
        raise CliError("nothing to update: give --file, --traffic, --mirror-traffic or --set")
    params = {"force": "true"} if args.force else None
    return _send(
        source.label if source else None,
        lambda: studio.patch(_endpoint_path(name), changes, if_match=args.if_match, params=params),
    )


# --- rollouts ---

ROLLOUT_FLAGS = {
    "deployment": "deployment",
    "steps": "steps",
    "step_duration": "step_duration",
    "min_requests": "min_requests",
    "on_failure": "on_failure",
}


def _steps(raw: str) -> list[int]:
    parts = [part for part in raw.replace(",", " ").split() if part]
    if not parts or not all(part.isdigit() for part in parts):
        raise CliError(f"--steps: expected whole percentages such as 10,25,50,100, got {raw!r}")
    return [int(part) for part in parts]


def _number(raw: str, flag: str) -> float | int:
    try:
        value = float(raw)
    except ValueError:
        raise CliError(f"{flag}: expected a number, got {raw!r}") from None
    return int(value) if value.is_integer() else value


def rollout_start(args: Namespace, studio: Studio) -> Any:
    """Start a progressive rollout from a YAML file, --set and/or flags."""
    source, doc = _document(args, {})
    if args.deployment:
        doc["deployment"] = args.deployment
    if args.steps:
        doc["steps"] = _steps(args.steps)
    if args.step_duration:
        doc["step_duration"] = args.step_duration
    if args.min_requests is not None:
        doc["min_requests"] = args.min_requests
    if args.on_failure:
        doc["on_failure"] = args.on_failure
    gates = {"max_error_rate": args.max_error_rate, "max_p99_ratio": args.max_p99_ratio}
    for key, raw in gates.items():
        if raw is not None:
            doc.setdefault("gates", {})[key] = _number(raw, "--" + key.replace("_", "-"))
    mirror = {
        "percent": args.mirror_percent,
        "duration": args.mirror_duration,
        "min_agreement": None if args.min_agreement is None else _number(args.min_agreement, "--min-agreement"),
    }
    for key, value in mirror.items():
        if value is not None:
            doc.setdefault("mirror_first", {})[key] = value
    path = f"{_endpoint_path(args.name)}/rollout"
    return _send(source.label if source else None, lambda: studio.post(path, doc))


def rollout_show(args: Namespace, studio: Studio) -> Any:
    """The endpoint's rollout: state, step, the gate values measured so far and their thresholds."""
    return studio.get(f"{_endpoint_path(args.name)}/rollout")


def rollout_action(args: Namespace, studio: Studio) -> Any:
    """pause, resume, promote or abort the endpoint's rollout."""
    return studio.post(f"{_endpoint_path(args.name)}/rollout/{args.action}")


def endpoint_show(args: Namespace, studio: Studio) -> Any:
    """One online endpoint, with its traffic, state and scoring URI."""
    return _endpoint_for(args, studio, args.name)


def endpoint_list(args: Namespace, studio: Studio) -> Any:
    """Every online endpoint (only the local ones with --local)."""
    endpoints = studio.list("online-endpoints")
    return [row for row in endpoints if row.get("local")] if args.local else endpoints


def confirm(args: Namespace, what: str) -> None:
    """Ask before deleting, unless --yes; with no terminal to ask on, refuse."""
    if args.yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise CliError(f"not deleting {what} without confirmation: pass --yes")
    sys.stderr.write(f"Are you sure you want to delete {what}? (y/n): ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError(f"cancelled: {what} was not deleted")


def endpoint_delete(args: Namespace, studio: Studio) -> Any:
    """Delete an online endpoint and its deployments."""
    what = f"online endpoint {args.name!r} and all its deployments"
    _endpoint_for(args, studio, args.name)  # a clear 404 before asking
    confirm(args, what)
    studio.delete(_endpoint_path(args.name))
    if not args.no_wait:
        wait_until_gone(studio, _endpoint_path(args.name), f"online endpoint {args.name}")
    return None


def _credential(studio: Studio, endpoint: dict[str, Any]) -> str:
    path = _endpoint_path(endpoint["name"])
    if endpoint.get("auth_mode") == "aml_token":
        return str(studio.post(f"{path}/token")["accessToken"])
    return str(studio.post(f"{path}/listKeys")["primaryKey"])


def endpoint_invoke(args: Namespace, studio: Studio) -> Any:
    """Send a request file to the endpoint's scoring URI and print the answer."""
    request_file = Path(args.request_file).expanduser()
    if not request_file.is_file():
        raise CliError(f"--request-file: {args.request_file} does not exist")
    endpoint = _endpoint_for(args, studio, args.name)
    uri = endpoint["scoring_uri"]
    headers = {"Content-Type": "application/json"}
    if not endpoint.get("local"):  # a local endpoint takes requests without a key
        headers["Authorization"] = f"Bearer {_credential(studio, endpoint)}"
    if args.deployment_name:
        headers["azureml-model-deployment"] = args.deployment_name
    try:
        response = httpx.post(uri, content=request_file.read_bytes(), headers=headers, timeout=INVOKE_TIMEOUT)
    except httpx.TransportError as exc:
        raise CliError(
            f"the scoring gateway is not reachable at {uri} ({type(exc).__name__}: {exc or 'no answer'}); "
            "is `studio up` running with its gateway?"
        ) from None
    if not response.is_success:
        body = response.text.strip() or "(empty body)"
        raise CliError(f"{response.status_code} {response.reason_phrase} from {uri}: {body}")
    return Raw(response.text)


def endpoint_get_credentials(args: Namespace, studio: Studio) -> Any:
    """The endpoint's keys (`primaryKey`, `secondaryKey`), or a token for aml_token endpoints."""
    endpoint = studio.get(_endpoint_path(args.name))
    if endpoint.get("auth_mode") == "aml_token":
        return endpoint_get_token(args, studio)
    return studio.post(f"{_endpoint_path(args.name)}/listKeys")


def endpoint_regenerate_keys(args: Namespace, studio: Studio) -> Any:
    """Replace the primary or the secondary key (prints nothing, as az does)."""
    body: dict[str, Any] = {"keyType": args.key_type.capitalize()}
    if args.key_value:
        body["keyValue"] = args.key_value
    studio.post(f"{_endpoint_path(args.name)}/regenerateKeys", body)
    return None


def endpoint_get_token(args: Namespace, studio: Studio) -> Any:
    """A bearer token for an aml_token endpoint, with its expiry."""
    token = studio.post(f"{_endpoint_path(args.name)}/token")
    return {key: token.get(key) for key in ("accessToken", "expiryTimeUtc", "refreshAfterTimeUtc")}


# --- online deployments ---


def _endpoint_name(args: Namespace, doc: dict[str, Any] | None = None, label: str | None = None) -> str:
    name = args.endpoint_name or (doc or {}).get("endpoint_name")
    if not name:
        where = f"{label}: " if label else ""
        raise CliError(f"{where}no endpoint: give --endpoint-name (-e) or endpoint_name in the YAML file")
    return str(name)


def _deployment_document(args: Namespace, studio: Studio) -> tuple[YamlFile, dict[str, Any], str]:
    """The deployment YAML with `--set` and the flags applied, its local files uploaded: (source, doc, endpoint)."""
    source, doc = _document(args, {"name": args.name, "endpoint_name": args.endpoint_name})
    if source is None:
        raise CliError("--file: required (the deployment's YAML file)")
    endpoint = _endpoint_name(args, doc, source.label)
    _endpoint_for(args, studio, endpoint)  # fail on a missing (or not local) endpoint before uploading anything
    _uploader(studio, source).deployment(doc)
    return source, doc, endpoint


def deployment_create(args: Namespace, studio: Studio) -> Any:
    """Create a deployment from its YAML file; waits until it settles unless --no-wait."""
    if args.all_traffic and args.no_wait:
        raise CliError("--all-traffic moves traffic once the deployment has succeeded, so it cannot go with --no-wait")
    source, doc, endpoint = _deployment_document(args, studio)
    created = _send(source.label, lambda: studio.post(f"{_endpoint_path(endpoint)}/deployments", doc))
    if args.no_wait:
        return created
    unchanged = "traffic was not changed (--all-traffic moves it only once the deployment succeeds)"
    final = wait_for_deployment(
        studio,
        endpoint=endpoint,
        name=created["name"],
        first=created,
        after_failure=unchanged if args.all_traffic else "",
    )
    if args.all_traffic:
        if studio.get(_endpoint_path(endpoint)).get("local"):
            progress(f"{endpoint}: local endpoint, {created['name']} takes every request")
        else:
            studio.patch(_endpoint_path(endpoint), {"traffic": {created["name"]: 100}})
            progress(f"{endpoint}: all traffic to {created['name']}")
    return final


def deployment_update(args: Namespace, studio: Studio) -> Any:
    """Change a deployment from its YAML file and/or `--set`; waits until it settles unless --no-wait."""
    if args.file:
        source, changes = _document(args, {"name": args.name, "endpoint_name": args.endpoint_name})
        label: str | None = source.label if source else None
        name = _required_name(args, changes)
        endpoint = _endpoint_name(args, changes, label)
        _uploader(studio, source).deployment(changes)
    else:
        label = None
        name = _required_name(args)
        endpoint = _endpoint_name(args)
        changes = _changes_to(studio.get(deployment_path(endpoint, name)), args)
        if not changes:
            raise CliError("nothing to update: give --file or --set key=value")
    if args.local:
        _endpoint_for(args, studio, endpoint)
    seen = events_so_far(studio, endpoint, name)
    updated = _send(label, lambda: studio.patch(deployment_path(endpoint, name), changes, if_match=args.if_match))
    if args.no_wait:
        return updated
    return wait_for_deployment(studio, endpoint=endpoint, name=name, first=updated, events_seen=seen)


def deployment_render(args: Namespace, studio: Studio) -> Any:
    """Print the Kubernetes manifests the deployment would run as (multi-document YAML); applies nothing."""
    _not_locally(args, "render")
    source, doc, endpoint = _deployment_document(args, studio)
    name = _required_name(args, doc)
    path = f"{deployment_path(endpoint, name)}/render"
    return Raw(_send(source.label, lambda: studio.post(path, doc))["manifests"])


def deployment_show(args: Namespace, studio: Studio) -> Any:
    """One deployment with its state, reason and instances."""
    if args.local:
        _endpoint_for(args, studio, args.endpoint_name)
    return studio.get(deployment_path(args.endpoint_name, args.name))


def deployment_list(args: Namespace, studio: Studio) -> Any:
    """The endpoint's deployments."""
    if args.local:
        _endpoint_for(args, studio, args.endpoint_name)
    return studio.list(f"{_endpoint_path(args.endpoint_name)}/deployments")


def deployment_delete(args: Namespace, studio: Studio) -> Any:
    """Delete a deployment that takes no live or mirrored traffic."""
    path = deployment_path(args.endpoint_name, args.name)
    if args.local:
        _endpoint_for(args, studio, args.endpoint_name)
    studio.get(path)  # a clear 404 before asking
    confirm(args, f"online deployment {args.name!r} of online endpoint {args.endpoint_name!r}")
    studio.delete(path)
    if not args.no_wait:
        wait_until_gone(studio, path, f"{args.endpoint_name}/{args.name}")
    return None


def deployment_get_logs(args: Namespace, studio: Studio) -> Any:
    """The last lines of the inference server's (or the storage initializer's) log."""
    if args.local:
        _endpoint_for(args, studio, args.endpoint_name)
    answer = studio.get(
        f"{deployment_path(args.endpoint_name, args.name)}/logs",
        container=args.container,
        lines=args.lines,
        instance=args.instance,
    )
    return Raw(answer.get("content", ""))


# --- costs ---


def _window(args: Namespace) -> dict[str, Any]:
    return {"start": args.start, "end": args.end, "endpoint": args.endpoint_name}


def costs_show(args: Namespace, studio: Studio) -> Any:
    """Costs over a window (default the last 30 days): per endpoint, deployment and day, month, idle."""
    return studio.get("costs", **_window(args))


def costs_export(args: Namespace, studio: Studio) -> Any:
    """The cost rows as CSV, one line per day, endpoint, deployment and instance type."""
    params = {key: value for key, value in _window(args).items() if value is not None}
    return Raw(studio.request("GET", "costs.csv", params=params, text=True) or "")


def costs_quota(args: Namespace, studio: Studio) -> Any:
    """Cores of the quota: limit, used, reserved for upgrades, free."""
    return studio.get("quota")


def status(args: Namespace, studio: Studio) -> Any:
    """Each part of the studio with the age of its heartbeat (the studio's /healthz); exit 1 when unhealthy."""
    url = f"{studio.config.url}/healthz"
    try:
        response = studio.http.get(url)
    except httpx.TransportError:
        raise CliError(f"the web server does not answer at {studio.config.url}: is `studio up` running?") from None
    try:
        report = response.json()
        parts = report["parts"]
    except (ValueError, KeyError, TypeError):
        raise CliError(f"GET {url} answered HTTP {response.status_code} without a health report") from None
    lines = [f"{'part':<12}{'status':<9}last heartbeat"]
    for part in parts:
        age = part.get("age_s")
        seen = "never" if part["status"] == "missing" else "-" if age is None else f"{age:.0f} s ago"
        lines.append(f"{part['name']:<12}{part['status']:<9}{seen}")
    print("\n".join(lines))
    if not report.get("ok"):
        raise CliError(
            f"deployments are not being reconciled (no pass of the reconciler within {report['stale_after_s']:.0f} s);"
            " the worker or beat is down"
        )
    return Raw("")


_DEPLOYMENT_COLUMNS = (
    "name",
    "provisioning_state",
    "reason",
    "message",
    "instance_count",
    "instance_type",
    "model",
    "environment",
    "endpoint_name",
)
_ENDPOINT_COLUMNS = ("name", "auth_mode", "provisioning_state", "local", "scoring_uri", "description")
# `-o table` columns, as az's table transformers pick them: the ones a person scans; `-o json` has every key.
_ROLLOUT_COLUMNS = ("endpoint", "deployment", "state", "position", "percent", "message")
TABLE_COLUMNS: dict[Callable[..., Any], tuple[str, ...]] = {
    rollout_start: _ROLLOUT_COLUMNS,
    rollout_show: _ROLLOUT_COLUMNS,
    rollout_action: _ROLLOUT_COLUMNS,
    deployment_list: _DEPLOYMENT_COLUMNS,
    deployment_show: _DEPLOYMENT_COLUMNS,
    deployment_create: _DEPLOYMENT_COLUMNS,
    deployment_update: _DEPLOYMENT_COLUMNS,
    endpoint_list: _ENDPOINT_COLUMNS,
    endpoint_show: _ENDPOINT_COLUMNS,
    endpoint_create: _ENDPOINT_COLUMNS,
    endpoint_update: _ENDPOINT_COLUMNS,
}
