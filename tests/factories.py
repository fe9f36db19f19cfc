"""Test data: real rows made through the same services a user's request goes through."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from apps.accounts.models import Membership
from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint, Environment, Model, Upload

SCORE_PY = """
import json, os

def init():
    global model_dir
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")

def run(raw_data):
    data = json.loads(raw_data)
    return {"echo": data, "model_dir": model_dir}
"""


def user(username: str = "alice", *, password: str = "correct-horse-battery", role: str = "admin") -> Any:
    """A user with a studio role (Admin unless a test is about roles)."""
    User = get_user_model()
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    created = User.objects.create_user(username=username, password=password)
    Membership.objects.create(user=created, role=role)
    return created


def zip_folder(files: dict[str, str]) -> bytes:
    """A zip archive of a folder given as {relative path: text}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def upload_folder(files: dict[str, str], *, name: str = "src") -> Upload:
    return services.upload_create(stream=io.BytesIO(zip_folder(files)), kind="folder", name=name)


def upload_file(content: bytes, *, name: str = "model.pkl") -> Upload:
    return services.upload_create(stream=io.BytesIO(content), kind="file", name=name)


def model(name: str = "sklearn-model", *, content: bytes = b"weights") -> Model:
    upload = upload_file(content)
    return services.model_create(spec={"name": name, "path": f"upload:{upload.uid}"})


def environment(name: str = "sklearn-env", **spec: Any) -> Environment:
    return services.environment_create(spec={"name": name, "image": "python:3.11", **spec})


def endpoint(name: str = "ep1", **spec: Any) -> Endpoint:
    return services.endpoint_create(spec={"name": name, **spec})


def deployment_spec(name: str = "blue", *, code: Upload | None = None, **overrides: Any) -> dict[str, Any]:
    code = code or upload_folder({"score.py": SCORE_PY})
    spec: dict[str, Any] = {
        "name": name,
        "model": f"azureml:{model().name}@latest",
        "code_configuration": {"code": f"upload:{code.uid}", "scoring_script": "score.py"},
        "environment": f"azureml:{environment().name}@latest",
        "instance_type": "Standard_DS2_v2",
        "instance_count": 1,
    }
    spec.update(overrides)
    return spec


def deployment(ep: Endpoint, name: str = "blue", **overrides: Any) -> Deployment:
    return services.deployment_create(endpoint=ep, spec=deployment_spec(name, **overrides))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root
