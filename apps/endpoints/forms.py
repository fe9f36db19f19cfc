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
