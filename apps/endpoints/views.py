"""The browser studio's pages: models, environments, endpoints and the endpoint's tabs.

Thin function views: writes go through services.py, reads through selectors.py (the few list
queries only pages need are the private helpers below). An ApplicationError becomes a form error.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import error_status, is_htmx, redirect, render_page_or_fragment
from apps.costs.models import InstanceType
from apps.endpoints import selectors, services, storage
from apps.endpoints.backends.base import Container
from apps.endpoints.forms import (
    DeploymentForm,
    EndpointWizardForm,
    EnvironmentForm,
    LogsForm,
    ModelRegisterForm,
    ScaleForm,
    TestForm,
    TrafficForm,
)
from apps.endpoints.logs import deployment_logs
from apps.endpoints.models import Deployment, Endpoint, Environment, Model, ProvisioningState, TrafficChange, Upload

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
HOURS_PER_MONTH = Decimal("730")  # Azure's pricing month
TABS = (
    ("details", "Details"),
    ("traffic", "Traffic"),
    ("test", "Test"),
    ("consume", "Consume"),
    ("monitoring", "Monitoring"),
    ("logs", "Logs"),
    ("events", "Events"),
    ("costs", "Costs"),
)
BUSY_STATES = (ProvisioningState.CREATING, ProvisioningState.UPDATING, ProvisioningState.SCALING)


# --- small reads only the pages need ---


def _prices() -> dict[str, Decimal]:
    return dict(InstanceType.objects.values_list("name", "price_per_hour"))


def _cost_per_day(deployments: list[Deployment], prices: dict[str, Decimal]) -> Decimal:
    """Instance-hours a day at the current size: what the deployments cost while they run."""
    total = Decimal(0)
    for deployment in deployments:
        if deployment.state in (ProvisioningState.DELETING, ProvisioningState.FAILED):
            continue
        total += prices.get(deployment.instance_type, Decimal(0)) * deployment.instance_count * 24
    return total.quantize(Decimal("0.01"))


def _endpoint(name: str) -> Endpoint:
    try:
        return selectors.endpoint_get(name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _deployment(endpoint: Endpoint, name: str) -> Deployment:
    try:
        return selectors.deployment_get(endpoint=endpoint, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _form_error(form: Any, exc: ApplicationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's error beside the field it names, else at the top of the form."""
    field = (field_map or {}).get(exc.field or "", exc.field)
    if field and field in form.fields:
        form.add_error(field, exc.message)
    else:
        form.add_error(None, exc.message)


def _upload_files(files: list[UploadedFile], *, folder_name: str, unpack: bool, user: Any) -> Upload:
    """Files from a form as one upload: an archive unpacked, one file as is, several files zipped into a folder."""
    if len(files) == 1 and unpack:
        return services.upload_create(stream=files[0], kind="folder", name=folder_name, user=user)
    if len(files) == 1 and folder_name == "":
        return services.upload_create(stream=files[0], kind="file", name=files[0].name or "file", user=user)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in files:
            archive.writestr(Path(item.name or "file").name, item.read())
    buffer.seek(0)
    return services.upload_create(stream=buffer, kind="folder", name=folder_name or "model", user=user)


def _is_archive(files: list[UploadedFile]) -> bool:
    return len(files) == 1 and (files[0].name or "").lower().endswith(ARCHIVE_SUFFIXES)


# --- models ---


@login_required
def models_list(request: HttpRequest) -> HttpResponse:
    """Every model name with its latest version and how many versions it has."""
    latest: dict[str, Model] = {}
    counts: dict[str, int] = {}
    for model in Model.objects.order_by("name", "-version"):
        latest.setdefault(model.name, model)
        counts[model.name] = counts.get(model.name, 0) + 1
    rows = [{"model": model, "versions": counts[name]} for name, model in latest.items()]
    return render(request, "models/models_list.html", {"rows": rows, "section": "models"})


@login_required
@require_http_methods(["GET", "POST"])
def model_register(request: HttpRequest) -> HttpResponse:
    """Register a model version from a file, several files or an archive."""
    form = ModelRegisterForm(request.POST or None, request.FILES or None, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        files = form.cleaned_data["files"]
        unpack = form.cleaned_data["unpack"] or False
        if unpack and len(files) != 1:
            form.add_error("unpack", f"unpack needs exactly one archive, got {len(files)} files")
        elif unpack and not _is_archive(files):
            form.add_error("unpack", f"{files[0].name!r} is not a .zip, .tar, .tar.gz or .tgz archive")
        else:
            try:
                with transaction.atomic():
                    name = form.cleaned_data["name"].strip()
                    single = len(files) == 1 and not unpack
                    upload = _upload_files(
                        files,
                        folder_name="" if single else Path(name).name or "model",
                        unpack=unpack,
                        user=request.user,
                    )
                    model = services.model_create(
                        spec={
                            "name": name,
                            "path": f"upload:{upload.uid}",
                            "type": form.cleaned_data["type"],
                            "description": form.cleaned_data["description"],
                        },
                        user=request.user,
                    )
            except ApplicationError as exc:
                _form_error(form, exc, {"path": "files"})
            else:
                messages.success(request, f"Registered model {model.name} version {model.version}.")
                return redirect(request, reverse("model", args=[model.name]))
    status = 400 if form.errors else 200
    return render(request, "models/model_register.html", {"form": form, "section": "models"}, status=status)


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model's versions, each with its files and the deployments that use it."""
    versions = list(Model.objects.filter(name=name).order_by("-version"))
    if not versions:
        raise Http404(f"model {name!r} does not exist")
    rows = []
    for model in versions:
        files = storage.list_files(model.root / model.path_name) if (model.root / model.path_name).exists() else []
        deployments = list(model.deployments.select_related("endpoint").order_by("endpoint__name", "name"))
        rows.append(
            {"model": model, "files": files[:200], "more_files": max(0, len(files) - 200), "deployments": deployments}
        )
    return render(request, "models/model_detail.html", {"name": name, "rows": rows, "section": "models"})


# --- environments ---


@login_required
def environments_list(request: HttpRequest) -> HttpResponse:
    """Every named environment with its newest version."""
    latest: dict[str, Environment] = {}
    counts: dict[str, int] = {}
    for environment in Environment.objects.filter(anonymous=False).order_by("name", "-created_at", "-id"):
        latest.setdefault(environment.name, environment)
        counts[environment.name] = counts.get(environment.name, 0) + 1
    rows = [{"environment": env, "versions": counts[name]} for name, env in latest.items()]
    return render(request, "environments/environments_list.html", {"rows": rows, "section": "environments"})


@login_required
@require_http_methods(["GET", "POST"])
def environment_create(request: HttpRequest) -> HttpResponse:
    """Register an environment version from a base image, a conda file or pip requirements."""
    form = EnvironmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec: dict[str, Any] = {"name": data["name"].strip(), "description": data["description"]}
        if data["image"].strip():
            spec["image"] = data["image"].strip()
        if data["conda_file"].strip():
            spec["conda_file"] = data["conda_file"].strip() + "\n"
        if data["pip_requirements"].strip():
            spec["pip_requirements"] = data["pip_requirements"].strip()
        try:
            environment = services.environment_create(spec=spec, user=request.user)
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Registered environment {environment.name} version {environment.version}.")
            return redirect(request, reverse("environment", args=[environment.name]))
    status = 400 if form.errors else 200
    context = {"form": form, "section": "environments"}
    return render(request, "environments/environment_create.html", context, status=status)


def _build_log(environment: Environment) -> str | None:
    """The local backend's build log of this environment, when it has built it."""
    root = Path(settings.STUDIO_ENVS_DIR)
    for candidate in (root / f"{environment.spec_hash}.build.log", root / environment.spec_hash / "build.log"):
        if candidate.is_file():
            return candidate.read_text(errors="replace")[-20000:]
    return None


@login_required
def environment_detail(request: HttpRequest, name: str) -> HttpResponse:
    """An environment's versions, with what each installs and its build log."""
    versions = list(Environment.objects.filter(name=name).order_by("-created_at", "-id"))
    if not versions:
        raise Http404(f"environment {name!r} does not exist")
    rows = [
        {
            "environment": env,
            "conda": json.dumps(env.conda_file, indent=2) if env.conda_file else "",
            "build_log": _build_log(env),
            "deployments": list(env.deployments.select_related("endpoint")),
        }
        for env in versions
    ]
    return render(
        request, "environments/environment_detail.html", {"name": name, "rows": rows, "section": "environments"}
    )


# --- endpoints ---


def _endpoint_state(deployments: list[Deployment]) -> str:
    states = {d.state for d in deployments}
    for state in (ProvisioningState.FAILED, *BUSY_STATES, ProvisioningState.DELETING):
        if state in states:
            return state
    return ProvisioningState.SUCCEEDED if deployments else "No deployments"


@login_required
def endpoints_list(request: HttpRequest) -> HttpResponse:
    """Endpoints with their state, traffic split and cost per day at the current size."""
    prices = _prices()
    rows = []
    for endpoint in selectors.endpoints_list().prefetch_related("deployments"):
        deployments = list(endpoint.deployments.all())
        rows.append(
            {
                "endpoint": endpoint,
                "deployments": deployments,
                "state": _endpoint_state(deployments),
                "traffic": [(n, p) for n, p in endpoint.traffic.items() if p],
                "mirror": list(endpoint.mirror_traffic.items()),
                "cost_per_day": _cost_per_day(deployments, prices),
            }
        )
    context = {"rows": rows, "section": "endpoints", "currency": settings.STUDIO_CURRENCY}
    return render_page_or_fragment(
        request, "endpoints/endpoints_list.html", "endpoints/partials/_endpoints_table.html", context
    )


def _deployment_form_context() -> dict[str, Any]:
    """Prices and quota the deployment forms show (the monthly estimate is computed as you type)."""
    types = list(InstanceType.objects.all())
    return {
        "instance_types": [{"name": t.name, "vcpus": t.vcpus, "price": str(t.price_per_hour)} for t in types],
        "quota": selectors.quota_summary(),
        "hours_per_month": str(HOURS_PER_MONTH),
        "currency": settings.STUDIO_CURRENCY,
        "has_models": Model.objects.exists(),
        "has_environments": Environment.objects.filter(anonymous=False).exists(),
    }


def _code_upload(form: DeploymentForm, user: Any) -> Upload:
    files = form.cleaned_data["code_files"]
    return _upload_files(files, folder_name="code", unpack=_is_archive(files), user=user)


DEPLOYMENT_FIELD_MAP = {
    "name": "deployment_name",
    "code_configuration.code": "code_files",
    "code_configuration.scoring_script": "scoring_script",
    "code_configuration": "code_files",
}


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_create(request: HttpRequest) -> HttpResponse:
    """The wizard: endpoint, first deployment, review, create; then the endpoint page shows the progress."""
    form = EndpointWizardForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        field_map: dict[str, str] = {}  # the endpoint's errors name its own fields
        try:
            with transaction.atomic():
                endpoint = services.endpoint_create(
                    spec={"name": data["name"], "auth_mode": data["auth_mode"], "description": data["description"]},
                    user=request.user,
                )
                field_map = DEPLOYMENT_FIELD_MAP  # from here on "name" means the deployment's
                upload = _code_upload(form, request.user)
                deployment = services.deployment_create(
                    endpoint=endpoint, spec=form.deployment_spec(f"upload:{upload.uid}"), user=request.user
                )
                if data["all_traffic"]:
                    services.traffic_set(endpoint=endpoint, traffic={deployment.name: 100}, user=request.user)
        except ApplicationError as exc:
            _form_error(form, exc, field_map)
        else:
            messages.success(request, f"Creating endpoint {endpoint.name} with deployment {deployment.name}.")
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = {"form": form, "section": "endpoints", **_deployment_form_context()}
    if form.errors:
        context["reselect_files"] = bool(request.FILES)
    return render(request, "endpoints/endpoint_create.html", context, status=400 if form.errors else 200)


def _tab_context(request: HttpRequest, endpoint: Endpoint, tab: str, **extra: Any) -> dict[str, Any]:
    deployments = list(selectors.deployments_list(endpoint=endpoint).prefetch_related("instances"))
    return {
        "endpoint": endpoint,
        "deployments": deployments,
        "tabs": [
            (key, label, reverse(f"endpoint-{key}" if key != "details" else "endpoint", args=[endpoint.name]))
            for key, label in TABS
        ],
        "tab": tab,
        "section": "endpoints",
        "currency": settings.STUDIO_CURRENCY,
        **extra,
    }


# The local and Kubernetes backends' timeline reasons, grouped into the stages a card shows.
STAGE_REASONS = (
    ("Building environment", ("BuildingEnvironment", "EnvironmentReady")),
    ("Initializing storage", ("StorageInitialized",)),
    ("Starting", ("InstanceStarted", "InstanceReady")),
    ("Ready", ("Ready", "Succeeded")),
)


def _stages(deployment: Deployment) -> list[dict[str, Any]]:
    """The deployment's stages of the current generation with their timings, from its timeline."""
    events = list(deployment.events.order_by("created_at", "id"))
    # Only the latest rollout matters: start at the last Creating/Updating/Scaling event.
    start = 0
    for index, event in enumerate(events):
        if event.reason in ("Creating", "Updating", "Scaling"):
            start = index
    events = events[start:]
    stages = []
    for label, reasons in STAGE_REASONS:
        matching = [e for e in events if e.reason in reasons]
        done = bool(matching) and (label != "Ready" or deployment.state == ProvisioningState.SUCCEEDED)
        duration = next((e.duration_ms for e in reversed(matching) if e.duration_ms is not None), None)
        seconds = None if duration is None else f"{duration / 1000:.1f} s"
        stages.append({"label": label, "done": done, "duration_ms": duration, "took": seconds})
    if deployment.state == ProvisioningState.SUCCEEDED:
        for stage in stages:  # a cached environment or a scale-only rollout skips stages: they are done
            stage["done"] = True
    return stages


def _card_context(deployment: Deployment, prices: dict[str, Decimal]) -> dict[str, Any]:
    price = prices.get(deployment.instance_type, Decimal(0))
    return {
        "instance_types": sorted(prices),
        "deployment": deployment,
        "stages": _stages(deployment),
        "instances": list(deployment.instances.all()),
        "busy": deployment.state in BUSY_STATES or deployment.state == ProvisioningState.DELETING,
        "live": deployment.endpoint.traffic.get(deployment.name, 0),
        "mirrored": deployment.endpoint.mirror_traffic.get(deployment.name, 0),
        "cost_per_day": (price * deployment.instance_count * 24).quantize(Decimal("0.01")),
    }


@login_required
def endpoint_detail(request: HttpRequest, name: str) -> HttpResponse:
    """The Details tab: one card per deployment."""
    endpoint = _endpoint(name)
    prices = _prices()
    context = _tab_context(request, endpoint, "details")
    context["cards"] = [_card_context(d, prices) for d in context["deployments"]]
    return render_page_or_fragment(
        request, "endpoints/endpoint_details.html", "endpoints/partials/_deployment_cards.html", context
    )


@login_required
@require_POST
def endpoint_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete the endpoint and all its deployments (their instances stop in the background)."""
    endpoint = _endpoint(name)
    try:
        services.endpoint_delete(endpoint=endpoint, user=request.user)
    except ApplicationError as exc:
        messages.error(request, f"Could not delete online endpoint {name}: {exc.message}")
        return redirect(request, reverse("endpoint", args=[name]))
    messages.success(request, f"Deleting online endpoint {name} and its deployments.")
    return redirect(request, reverse("endpoints"))


@login_required
def deployment_card(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """One deployment's card (htmx refreshes it when the deployment's state changes)."""
    endpoint = _endpoint(name)
    row = endpoint.deployments.filter(name=deployment).first()
    if row is None:  # deleted while the page was open: say so instead of a 404 the page cannot show
        return render(request, "endpoints/partials/_deployment_gone.html", {"endpoint": endpoint, "name": deployment})
    context = {**_card_context(row, _prices()), "endpoint": endpoint, "currency": settings.STUDIO_CURRENCY}
    return render(request, "endpoints/partials/_deployment_card.html", context)


@login_required
@require_POST
def deployment_scale(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """Change a deployment's instance count (a scale) or its instance type too (a rolling update)."""
    endpoint = _endpoint(name)
    row = _deployment(endpoint, deployment)
    form = ScaleForm(request.POST)
    error = None
    if form.is_valid():
        count = form.cleaned_data["instance_count"]
        instance_type = form.cleaned_data["instance_type"] or row.instance_type
        try:
            if instance_type != row.instance_type:
                services.deployment_update(
                    deployment=row,
                    changes={"instance_type": instance_type, "instance_count": count},
                    user=request.user,
                )
            else:
                services.deployment_scale(
                    deployment=row,
                    instance_count=count,
                    reason=f"set to {count} in the studio by {request.user.get_username()}",
                    user=request.user,
                )
        except ApplicationError as exc:
            error = exc.message
    else:
        error = "; ".join(f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in form.errors.items())
    row = _deployment(endpoint, deployment)
    context = {
        **_card_context(row, _prices()),
        "endpoint": endpoint,
        "card_error": error,
        "currency": settings.STUDIO_CURRENCY,
    }
    return render(
        request,
        "endpoints/partials/_deployment_card.html",
        context,
        status=error_status(request, 400 if error else 200),
    )


@login_required
@require_POST
def deployment_delete(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """Delete a deployment; refused with the reason while it takes live or mirrored traffic."""
    endpoint = _endpoint(name)
    row = _deployment(endpoint, deployment)
    try:
        services.deployment_delete(deployment=row, user=request.user)
    except ApplicationError as exc:
        context = {
            **_card_context(row, _prices()),
            "endpoint": endpoint,
            "card_error": exc.message,
            "currency": settings.STUDIO_CURRENCY,
        }
        return render(request, "endpoints/partials/_deployment_card.html", context, status=error_status(request, 409))
    row = _deployment(endpoint, deployment)
    context = {**_card_context(row, _prices()), "endpoint": endpoint, "currency": settings.STUDIO_CURRENCY}
    if is_htmx(request):
        return render(request, "endpoints/partials/_deployment_card.html", context)
    messages.success(request, f"Deleting deployment {deployment}.")
    return redirect(request, reverse("endpoint", args=[endpoint.name]))


@login_required
@require_http_methods(["GET", "POST"])
def deployment_create(request: HttpRequest, name: str) -> HttpResponse:
    """Add a deployment to an endpoint (it takes no traffic until you move the slider)."""
    endpoint = _endpoint(name)
    form = DeploymentForm(request.POST or None, request.FILES or None, initial={"deployment_name": "green"})
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                upload = _code_upload(form, request.user)
                deployment = services.deployment_create(
                    endpoint=endpoint, spec=form.deployment_spec(f"upload:{upload.uid}"), user=request.user
                )
        except ApplicationError as exc:
            _form_error(form, exc, DEPLOYMENT_FIELD_MAP)
        else:
            messages.success(
                request, f"Creating deployment {deployment.name}; it takes no traffic until you give it some."
            )
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = _tab_context(request, endpoint, "details", form=form, **_deployment_form_context())
    return render(request, "endpoints/deployment_create.html", context, status=400 if form.errors else 200)


# --- traffic ---


def _traffic_context(request: HttpRequest, endpoint: Endpoint, form: TrafficForm | None = None) -> dict[str, Any]:
    context = _tab_context(request, endpoint, "traffic")
    names = [d.name for d in context["deployments"] if d.state != ProvisioningState.DELETING]
    prices = _prices()
    idle = [n for n in names if not endpoint.traffic.get(n)]
    mirror_name, mirror_percent = next(iter(endpoint.mirror_traffic.items()), (idle[0] if idle else "", 0))
    if form is None:
        initial: dict[str, Any] = {f"traffic_{n}": endpoint.traffic.get(n, 0) for n in names}
        initial.update(
            {
                "mirror_enabled": bool(mirror_percent),
                "mirror_deployment": mirror_name,
                "mirror_percent": mirror_percent or 10,
            }
        )
        form = TrafficForm(initial=initial, deployments=names)
    context["form"] = form
    context["sliders"] = [
        {
            "deployment": d,
            "field": form[f"traffic_{d.name}"],
            "cost_per_day": _cost_per_day([d], prices),
        }
        for d in context["deployments"]
        if d.name in names
    ]
    context["history"] = list(endpoint.traffic_changes.select_related("user")[:50])
    return context


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_traffic(request: HttpRequest, name: str) -> HttpResponse:
    """The Traffic tab: sliders that sum to 100, the mirror, Apply, and the history with revert."""
    endpoint = _endpoint(name)
    if request.method == "POST":
        names = [d.name for d in selectors.deployments_list(endpoint=endpoint) if d.state != ProvisioningState.DELETING]
        form = TrafficForm(request.POST, deployments=names)
        if form.is_valid():
            try:
                endpoint = services.traffic_set(
                    endpoint=endpoint, traffic=form.traffic(), mirror_traffic=form.mirror(), user=request.user
                )
            except ApplicationError as exc:
                _form_error(form, exc, {"traffic": "__all__", "mirror_traffic": "mirror_percent"})
            else:
                messages.success(request, "Traffic applied.")
                return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))
        context = _traffic_context(request, endpoint, form)
        return render_page_or_fragment(
            request, "endpoints/endpoint_traffic.html", "endpoints/partials/_traffic.html", context, status=400
        )
    context = _traffic_context(request, endpoint)
    return render_page_or_fragment(
        request, "endpoints/endpoint_traffic.html", "endpoints/partials/_traffic.html", context
    )


@login_required
@require_POST
def traffic_revert(request: HttpRequest, name: str, change_id: int) -> HttpResponse:
    """Put back the traffic and mirror as they were before one recorded change."""
    endpoint = _endpoint(name)
    change = TrafficChange.objects.filter(endpoint=endpoint, pk=change_id).first()
    if change is None:
        raise Http404(f"traffic change {change_id} does not exist for online endpoint {name!r}")
    try:
        services.traffic_set(
            endpoint=endpoint, traffic=change.traffic_before, mirror_traffic=change.mirror_before, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, f"Could not revert: {exc.message}")
    else:
        messages.success(request, "Traffic reverted.")
    return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))


# --- test ---


def _credential(endpoint: Endpoint) -> str:
    if endpoint.auth_mode == Endpoint.AuthMode.KEY:
        return endpoint.primary_key
    return services.token_issue(endpoint=endpoint)["accessToken"]


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_test(request: HttpRequest, name: str) -> HttpResponse:
    """The Test tab: the studio posts the body to the gateway itself (no keys in the browser, no CORS)."""
    endpoint = _endpoint(name)
    names = [d.name for d in selectors.deployments_list(endpoint=endpoint)]
    form = TestForm(request.POST or None, deployments=names)
    result: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        headers = {"Authorization": f"Bearer {_credential(endpoint)}", "Content-Type": "application/json"}
        if form.cleaned_data["deployment"]:
            headers["azureml-model-deployment"] = form.cleaned_data["deployment"]
        started = time.perf_counter()
        try:
            response = httpx.post(
                endpoint.scoring_uri, content=form.cleaned_data["body"].encode(), headers=headers, timeout=60
            )
        except httpx.HTTPError as exc:
            form.add_error(None, f"the scoring gateway at {settings.STUDIO_GATEWAY_URL} did not answer: {exc}")
        else:
            body = response.text
            try:
                body = json.dumps(response.json(), indent=2)
            except ValueError:
                pass
            result = {
                "status": response.status_code,
                "deployment": response.headers.get("azureml-model-deployment", ""),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": response.headers.get("x-request-id", ""),
                "body": body[:100_000],
            }
    context = _tab_context(request, endpoint, "test", form=form, result=result)
    status = 400 if form.errors else 200
    return render_page_or_fragment(
        request, "endpoints/endpoint_test.html", "endpoints/partials/_test.html", context, status=status
    )


# --- consume ---


@login_required
def endpoint_consume(request: HttpRequest, name: str) -> HttpResponse:
    """The Consume tab: scoring and swagger URIs, keys (hidden until shown), samples."""
    endpoint = _endpoint(name)
    return render(request, "endpoints/endpoint_consume.html", _tab_context(request, endpoint, "consume"))


@login_required
@require_POST
def endpoint_keys(request: HttpRequest, name: str) -> HttpResponse:
    """The endpoint's keys, shown on request (never part of the page until asked for)."""
    endpoint = _endpoint(name)
    if request.POST.get("regenerate"):
        try:
            endpoint = services.keys_regenerate(endpoint=endpoint, key_type=request.POST["regenerate"])
        except ApplicationError as exc:
            return render(
                request,
                "endpoints/partials/_keys.html",
                {"endpoint": endpoint, "error": exc.message},
                status=error_status(request, 400),
            )
        context = {"endpoint": endpoint, "shown": True, "regenerated": request.POST["regenerate"]}
        return render(request, "endpoints/partials/_keys.html", context)
    hide = request.POST.get("hide") == "1"
    return render(request, "endpoints/partials/_keys.html", {"endpoint": endpoint, "shown": not hide})


@login_required
@require_POST
def endpoint_token(request: HttpRequest, name: str) -> HttpResponse:
    """A fresh bearer token for an aml_token endpoint."""
    endpoint = _endpoint(name)
    try:
        token = services.token_issue(endpoint=endpoint)
    except ApplicationError as exc:
        return render(
            request,
            "endpoints/partials/_token.html",
            {"endpoint": endpoint, "error": exc.message},
            status=error_status(request, 400),
        )
    return render(request, "endpoints/partials/_token.html", {"endpoint": endpoint, "token": token})


# --- logs and events ---


def read_deployment_logs(deployment: Deployment, *, container: str, lines: int, instance: str | None) -> str:
    """The deployment's log lines from its backend (`container` is one the logs form or consumer accepted)."""
    return deployment_logs(
        deployment=deployment, container=cast(Container, container), lines=lines, instance=instance or None
    )


@login_required
def endpoint_logs(request: HttpRequest, name: str) -> HttpResponse:
    """The Logs tab: deployment, instance, container, lines, search, follow and download."""
    endpoint = _endpoint(name)
    names = [d.name for d in selectors.deployments_list(endpoint=endpoint)]
    data = request.GET.copy()
    data.setdefault("container", "inference-server")
    data.setdefault("lines", "100")
    if names:
        data.setdefault("deployment", names[0])
    form = LogsForm(data, deployments=names)
    content: str | None = None
    error: str | None = None
    instances: list[str] = []
    if names and form.is_valid():
        row = _deployment(endpoint, form.cleaned_data["deployment"])
        instances = list(row.instances.values_list("name", flat=True))
        try:
            content = read_deployment_logs(
                row,
                container=form.cleaned_data["container"],
                lines=form.cleaned_data["lines"],
                instance=form.cleaned_data["instance"],
            )
        except ApplicationError as exc:
            error = exc.message
        if content is not None and request.GET.get("download"):
            response = HttpResponse(content, content_type="text/plain; charset=utf-8")
            filename = f"{endpoint.name}-{row.name}-{form.cleaned_data['container']}.log"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
    search = form.cleaned_data.get("search", "") if form.is_bound and form.is_valid() else ""
    shown = content
    if content and search:
        shown = "\n".join(line for line in content.splitlines() if search.lower() in line.lower())
    context = _tab_context(
        request,
        endpoint,
        "logs",
        form=form,
        content=shown,
        error=error,
        instances=instances,
        search=search,
    )
    return render_page_or_fragment(request, "endpoints/endpoint_logs.html", "endpoints/partials/_logs.html", context)


@login_required
def endpoint_events(request: HttpRequest, name: str) -> HttpResponse:
    """The Events tab: every deployment's timeline, newest first, or one deployment's."""
    endpoint = _endpoint(name)
    context = _tab_context(request, endpoint, "events")
    chosen = request.GET.get("deployment", "")
    events = [
        {"deployment": d.name, "event": e}
        for d in context["deployments"]
        if not chosen or d.name == chosen
        for e in d.events.all()
    ]
    events.sort(key=lambda item: (item["event"].created_at, item["event"].id), reverse=True)
    changes = list(endpoint.traffic_changes.select_related("user")[:50]) if not chosen else []
    context.update({"events": events[:500], "chosen": chosen, "changes": changes})
    return render_page_or_fragment(
        request, "endpoints/endpoint_events.html", "endpoints/partials/_events.html", context
    )


# --- monitoring and costs tabs (their data comes from apps/monitoring and apps/costs) ---


@login_required
def endpoint_monitoring(request: HttpRequest, name: str) -> HttpResponse:
    """The Monitoring tab: live latency, request rate and error charts."""
    from apps.monitoring.views import endpoint_figures

    endpoint = _endpoint(name)
    figures = endpoint_figures(endpoint)
    context = _tab_context(request, endpoint, "monitoring", figures=figures, figures_json=figures or {})
    return render(request, "endpoints/endpoint_monitoring.html", context)


@login_required
def endpoint_costs(request: HttpRequest, name: str) -> HttpResponse:
    """The Costs tab: per deployment per day, month to date, projected month."""
    from apps.monitoring.views import cost_figures
    from apps.monitoring.views import endpoint_costs as costs_for

    endpoint = _endpoint(name)
    context = _tab_context(request, endpoint, "costs")
    prices = _prices()
    context["rates"] = [
        {
            "deployment": d,
            "price": prices.get(d.instance_type, Decimal(0)),
            "per_day": _cost_per_day([d], prices),
            "per_month": (_cost_per_day([d], prices) / 24 * HOURS_PER_MONTH).quantize(Decimal("0.01")),
        }
        for d in context["deployments"]
    ]
    context["costs"] = costs_for(endpoint)
    context["figures_json"] = cost_figures(context["costs"]) or {}
    return render(request, "endpoints/endpoint_costs.html", context)
