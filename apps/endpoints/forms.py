"""Forms of the browser studio: they check the shape of the input; the rules live in services.py."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from apps.costs.selectors import NO_PRICE, instance_type_prices
from apps.endpoints import catalog, selectors
from apps.endpoints.models import Endpoint, Model
from apps.endpoints.yaml.schemas import NAME_RE


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files from a single `<input type=file multiple>`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data if item] or [single(None, initial)]
        return [single(data, initial)]


def _resource_name(value: str, what: str) -> str:
    value = value.strip()
    if not 3 <= len(value) <= 32 or not NAME_RE.match(value):
        raise forms.ValidationError(
            f"{what} name {value!r} must be 3 to 32 letters, digits or single dashes, starting with a letter"
        )
    return value


class ModelRegisterForm(forms.Form):
    name = forms.CharField(max_length=255, help_text="The version goes up by one with every registration.")
    type = forms.ChoiceField(choices=Model.Type.choices, initial=Model.Type.CUSTOM)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # The metaclass moves fields into base_fields, so form.files stays the uploaded files at run time.
    files = MultipleFileField(  # type: ignore[assignment]
        help_text="One file, several files (kept together in a folder), or one zip/tar archive."
    )
    unpack = forms.BooleanField(
        required=False, label="Unpack the archive", help_text="The single file is a zip or tar archive of a folder."
    )


class EnvironmentForm(forms.Form):
    name = forms.CharField(max_length=255)
    image = forms.CharField(max_length=512, required=False, help_text="Base image, e.g. python:3.11")
    conda_file = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), help_text="The conda YAML (its pip list is used)."
    )
    pip_requirements = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="requirements.txt lines."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


def _choices(form: forms.Form, name: str, choices: list[tuple[str, str]]) -> None:
    """Set the choices of a form's choice field (filled per request, from the database)."""
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


def _model_choices() -> list[tuple[str, str]]:
    return [(m.asset_id, f"{m.name} : {m.version}") for m in selectors.models_list()]


def _environment_choices() -> list[tuple[str, str]]:
    return [(e.asset_id, f"{e.name} : {e.version}") for e in selectors.environments_list()]


def _instance_type_choices() -> list[tuple[str, str]]:
    prices = instance_type_prices()
    return [
        (t.name, f"{t.name} · {t.vcpus} vCPU · {t.memory_gib.normalize():f} GiB · ${prices.get(t.name, NO_PRICE)}/h")
        for t in catalog.instance_types_list()
    ]


class DeploymentForm(forms.Form):
    """A deployment: model, code and scoring script, environment, instance type and count."""

    deployment_name = forms.CharField(max_length=32, initial="blue", label="Deployment name")
    model = forms.ChoiceField(choices=())
    code_files = MultipleFileField(
        label="Code", help_text="The scoring code: one or more files, or one zip/tar archive of the code folder."
    )
    scoring_script = forms.CharField(max_length=255, initial="score.py", help_text="Defines init() and run().")
    environment = forms.ChoiceField(choices=())
    instance_type = forms.ChoiceField(choices=(), initial="Standard_DS3_v2")
    instance_count = forms.IntegerField(min_value=1, max_value=50, initial=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "model", _model_choices())
        _choices(self, "environment", _environment_choices())
        _choices(self, "instance_type", _instance_type_choices())

    def clean_deployment_name(self) -> str:
        return _resource_name(self.cleaned_data["deployment_name"], "deployment")

    def deployment_spec(self, code_ref: str) -> dict[str, Any]:
        """The Azure-shaped deployment spec for services.deployment_create."""
        data = self.cleaned_data
        return {
            "name": data["deployment_name"],
            "model": data["model"],
            "code_configuration": {"code": code_ref, "scoring_script": data["scoring_script"].strip()},
            "environment": data["environment"],
            "instance_type": data["instance_type"],
            "instance_count": data["instance_count"],
        }


class EndpointWizardForm(DeploymentForm):
    """Endpoint, then its first deployment, in one form shown step by step."""

    field_order = ["name", "auth_mode", "description"]

    name = forms.CharField(max_length=32, label="Endpoint name")
    auth_mode = forms.ChoiceField(choices=Endpoint.AuthMode.choices, initial=Endpoint.AuthMode.KEY)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    all_traffic = forms.BooleanField(required=False, initial=True, label="Send all traffic to this deployment")

    def clean_name(self) -> str:
        return _resource_name(self.cleaned_data["name"], "endpoint")


class ScaleForm(forms.Form):
    """A deployment's size: its instance type and count."""

    instance_type = forms.ChoiceField(required=False, choices=())
    instance_count = forms.IntegerField(min_value=1, max_value=50)
    version = forms.IntegerField(required=False, min_value=1)  # the deployment's version the card was drawn from

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "instance_type", [("", "unchanged"), *_instance_type_choices()])


class TestForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), initial='{"data": [[1, 2, 3, 4]]}')
    deployment = forms.ChoiceField(required=False, label="Send to")

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "Traffic rules of the endpoint")] + [(name, f"Only {name}") for name in deployments]
        _choices(self, "deployment", choices)

    def clean_body(self) -> str:
        body = self.cleaned_data["body"]
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return body


class TrafficForm(forms.Form):
    """One percent per deployment, and an optional mirror to one deployment."""

    mirror_enabled = forms.BooleanField(required=False, label="Mirror a copy of live traffic")
    mirror_deployment = forms.ChoiceField(required=False, label="Mirror to")
    mirror_percent = forms.IntegerField(required=False, min_value=0, max_value=50, label="Mirror percent")
    version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployments = deployments
        for name in deployments:
            self.fields[f"traffic_{name}"] = forms.IntegerField(min_value=0, max_value=100, label=name)
        _choices(self, "mirror_deployment", [(name, name) for name in deployments])

    def traffic(self) -> dict[str, int]:
        return {name: self.cleaned_data[f"traffic_{name}"] for name in self.deployments}

    def mirror(self) -> dict[str, int]:
        data = self.cleaned_data
        if not data.get("mirror_enabled") or not data.get("mirror_percent"):
            return {}
        return {data["mirror_deployment"]: data["mirror_percent"]}


LOG_CONTAINERS = ("inference-server", "storage-initializer")


class LogsForm(forms.Form):
    deployment = forms.ChoiceField()
    instance = forms.CharField(required=False)
    container = forms.ChoiceField(choices=[(c, c) for c in LOG_CONTAINERS], initial="inference-server")
    lines = forms.IntegerField(min_value=1, max_value=5000, initial=100)
    search = forms.CharField(required=False, max_length=200)

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "deployment", [(name, name) for name in deployments])


def parse_pairs(text: str, *, what: str) -> dict[str, str]:
    """`KEY=value` lines (blank lines skipped) as a mapping; a line without `=` is named in the error."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"line {number}: expected {what} as KEY=value, got {line.strip()!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def format_pairs(pairs: dict[str, Any] | None) -> str:
    return "\n".join(f"{key}={value}" for key, value in (pairs or {}).items())


class EndpointEditForm(forms.Form):
    """An endpoint's description and tags (the rest of its attributes cannot change or have their own tab)."""

    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One tag a line, as key=value."
    )
    # The endpoint's version when the form was drawn: a stale form is refused, never saved over a newer change.
    version = forms.IntegerField(widget=forms.HiddenInput)

    def clean_tags(self) -> dict[str, str]:
        return parse_pairs(self.cleaned_data["tags"], what="a tag")


HIDDEN_VALUE = "••••"  # what a role that may not read secrets sees in place of a variable's value
PROBE_KEYS = ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold")
REQUEST_KEYS = ("request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms")
SCALE_KEYS = ("min_instances", "max_instances", "target_utilization_percentage", "polling_interval")


class DeploymentEditForm(forms.Form):
    """Every updatable field of a deployment; the bounds are the YAML schema's, checked by the service."""

    PROBE_KEYS = PROBE_KEYS
    REQUEST_KEYS = REQUEST_KEYS
    SCALE_KEYS = SCALE_KEYS

    model = forms.ChoiceField(choices=(), required=False, help_text="The model and its version.")
    code_files = MultipleFileField(
        label="New code",
        required=False,
        help_text="Leave empty to keep the current code; else one or more files, or one zip/tar archive of the folder.",
    )
    code_ref = forms.CharField(required=False, widget=forms.HiddenInput)
    # The deployment's version when the form was drawn (If-Match): Review and Apply refuse a stale form.
    version = forms.IntegerField(widget=forms.HiddenInput)
    scoring_script = forms.CharField(max_length=255, required=False, help_text="Defines init() and run().")
    environment = forms.ChoiceField(choices=())
    environment_variables = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Environment variables",
        help_text="One a line, as NAME=value.",
    )
    instance_type = forms.ChoiceField(choices=())
    instance_count = forms.IntegerField()
    scale_type = forms.ChoiceField(
        choices=[("default", "default (fixed count)"), ("target_utilization", "target_utilization")],
        label="Scale type",
    )

    def __init__(self, *args: Any, deployment: Any, viewer: Any, **kwargs: Any) -> None:
        spec = selectors.deployment_spec_view(deployment)
        shown = selectors.spec_for_viewer(spec, viewer=viewer)
        hidden = shown.get(selectors.HIDDEN_KEY)
        variables = shown.get("environment_variables") or {}
        initial: dict[str, Any] = {
            "model": spec.get("model") or "",
            "scoring_script": (spec.get("code_configuration") or {}).get("scoring_script", ""),
            "environment": spec["environment"],
            "environment_variables": "\n".join(f"{key}={HIDDEN_VALUE}" for key in variables)
            if hidden
            else format_pairs(variables),
            "instance_type": spec.get("instance_type"),
            "instance_count": spec.get("instance_count"),
            "scale_type": (spec.get("scale_settings") or {}).get("type", "default"),
            "version": deployment.version,
        }
        for key in REQUEST_KEYS:
            initial[key] = (spec.get("request_settings") or {}).get(key)
        for probe in ("liveness_probe", "readiness_probe"):
            for key in PROBE_KEYS:
                initial[f"{probe}_{key}"] = (spec.get(probe) or {}).get(key)
        for key in SCALE_KEYS:
            initial[f"scale_{key}"] = (spec.get("scale_settings") or {}).get(key)
        kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.deployment = deployment
        self.current = spec
        if hidden:
            # A role that may not read the values may not change the deployment either: the field only shows names.
            self.fields["environment_variables"].disabled = True
            self.fields["environment_variables"].help_text = f"{hidden[:1].upper()}{hidden[1:]}."
        for key in REQUEST_KEYS:
            self.fields[key] = forms.IntegerField(label=key.replace("_", " ").capitalize())
        for probe, title in (("liveness_probe", "Liveness"), ("readiness_probe", "Readiness")):
            for key in PROBE_KEYS:
                self.fields[f"{probe}_{key}"] = forms.IntegerField(label=f"{title} {key.replace('_', ' ')}")
        for key in SCALE_KEYS:
            self.fields[f"scale_{key}"] = forms.IntegerField(required=False, label=key.replace("_", " ").capitalize())
        models = _model_choices()
        if not spec.get("model"):
            models = [("", "no model"), *models]
        _choices(self, "model", models)
        environments = _environment_choices()
        if spec["environment"] not in {value for value, _ in environments}:
            # An inline (anonymous) environment from a YAML file: keep it as a choice.
            environments = [(spec["environment"], f"{spec['environment']} (inline)"), *environments]
        _choices(self, "environment", environments)
        _choices(self, "instance_type", _instance_type_choices())

    def clean_environment_variables(self) -> dict[str, str]:
        return parse_pairs(self.cleaned_data["environment_variables"], what="a variable")

    def groups(self) -> list[tuple[str, list[Any]]]:
        """The fields by section, as the page lays them out."""
        names = [
            ("Model and code", ["model", "code_files", "scoring_script"]),
            ("Environment", ["environment", "environment_variables"]),
            ("Size and scale", ["instance_type", "instance_count", "scale_type", *(f"scale_{k}" for k in SCALE_KEYS)]),
            ("Request settings", list(REQUEST_KEYS)),
            ("Liveness probe", [f"liveness_probe_{k}" for k in PROBE_KEYS]),
            ("Readiness probe", [f"readiness_probe_{k}" for k in PROBE_KEYS]),
        ]
        return [(title, [self[name] for name in fields]) for title, fields in names]

    def changes(self, code_ref: str | None) -> dict[str, Any]:
        """The Azure-shaped changes for services.deployment_update (a new code upload when `code_ref` is given)."""
        data = self.cleaned_data
        changes: dict[str, Any] = {
            "model": data["model"] or None,
            "environment": data["environment"],
            "environment_variables": data["environment_variables"],
            "instance_type": data["instance_type"],
            "instance_count": data["instance_count"],
            "request_settings": {key: data[key] for key in REQUEST_KEYS},
            "liveness_probe": {key: data[f"liveness_probe_{key}"] for key in PROBE_KEYS},
            "readiness_probe": {key: data[f"readiness_probe_{key}"] for key in PROBE_KEYS},
        }
        scale: dict[str, Any] = {"type": data["scale_type"]}
        if data["scale_type"] == "target_utilization":
            scale.update({key: data[f"scale_{key}"] for key in SCALE_KEYS if data[f"scale_{key}"] is not None})
        changes["scale_settings"] = scale
        code = self.current.get("code_configuration")
        script = (data["scoring_script"] or "").strip()
        if code_ref:
            changes["code_configuration"] = {"code": code_ref, "scoring_script": script}
        elif code:
            changes["code_configuration"] = {"code": code["code"], "scoring_script": script or code["scoring_script"]}
        return changes


FILES_HELP = (
    "Every file the YAML names (model file, conda file) as it is, and every folder (the code folder, a model "
    "folder) as a .zip or .tar.gz archive named after the folder, e.g. onlinescoring.zip."
)


class EndpointYamlForm(forms.Form):
    endpoint_file = forms.FileField(label="Endpoint YAML", help_text="As for studio online-endpoint create -f.")
    deployment_file = forms.FileField(
        label="Deployment YAML",
        required=False,
        help_text="Optional: its first deployment (online-deployment create -f).",
    )
    files = MultipleFileField(label="Files and folders", required=False, help_text=FILES_HELP)  # type: ignore[assignment]
    all_traffic = forms.BooleanField(required=False, initial=True, label="Send all traffic to the deployment")


class DeploymentYamlForm(forms.Form):
    deployment_file = forms.FileField(label="Deployment YAML", help_text="As for studio online-deployment create -f.")
    files = MultipleFileField(label="Files and folders", required=False, help_text=FILES_HELP)  # type: ignore[assignment]
