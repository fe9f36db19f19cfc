"""The nouns of Azure ML v2 online serving: models, environments, endpoints, deployments and instance types."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class Upload(BaseModel):
    """Files sent before a model, code folder or environment refers to them (`upload:<uid>`)."""

    class Kind(models.TextChoices):
        FILE = "file"
        FOLDER = "folder"

    name = models.CharField(max_length=255, help_text="The original file or folder name.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField(default=0)
    file_count = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    @property
    def root(self) -> Path:
        """The folder that holds the uploaded file or folder, named as uploaded."""
        return Path(settings.MEDIA_ROOT) / "uploads" / str(self.uid)

    @property
    def path(self) -> Path:
        return self.root / self.name

    def __str__(self) -> str:
        return f"upload:{self.uid} ({self.name})"


class Model(BaseModel):
    """A registered model version; its files live under MEDIA_ROOT/models/<name>/<version>/."""

    class Type(models.TextChoices):
        CUSTOM = "custom_model"
        MLFLOW = "mlflow_model"
        TRITON = "triton_model"

    name = models.CharField(max_length=255)
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.CUSTOM)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    path_name = models.CharField(max_length=255, help_text="The model's own file or folder name.")
    is_folder = models.BooleanField(default=True)
    size = models.BigIntegerField(default=0)
    file_count = models.PositiveIntegerField(default=0)
    anonymous = models.BooleanField(default=False, help_text="Registered inline by a deployment without a name.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="model_name_version_unique")]
        ordering = ["name", "-version"]
        indexes = [models.Index(fields=["anonymous", "name"], name="model_list_idx")]

    @property
    def root(self) -> Path:
        """The folder that holds the model's own file or folder (what AZUREML_MODEL_DIR points at)."""
        return Path(settings.MEDIA_ROOT) / "models" / self.name / str(self.version)

    @property
    def asset_id(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    def __str__(self) -> str:
        return self.asset_id


class Environment(BaseModel):
    """A registered environment version: base image, conda file, pip requirements, inference routes."""

    name = models.CharField(max_length=255)
    version = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    image = models.CharField(max_length=512, blank=True)
    conda_file = models.JSONField(null=True, blank=True, help_text="The parsed conda YAML.")
    conda_text = models.TextField(blank=True, default="", help_text="The conda YAML as it was typed or uploaded.")
    pip_requirements = models.TextField(blank=True, help_text="requirements.txt lines.")
    inference_config = models.JSONField(null=True, blank=True)
    anonymous = models.BooleanField(default=False, help_text="Created inline by a deployment.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="environment_name_version_unique")]
        ordering = ["name", "-created_at"]
        indexes = [models.Index(fields=["anonymous", "name"], name="environment_list_idx")]

    @property
    def build_spec(self) -> dict[str, Any]:
        """What decides the built virtual environment; equal specs share one build."""
        return {"image": self.image, "conda_file": self.conda_file, "pip": self.pip_requirements.strip()}

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(self.build_spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def asset_id(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    def __str__(self) -> str:
        return self.asset_id


class Versioned(models.Model):
    """A row edited by users: its version (the API's etag) and who made the last change, and what it was."""

    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change a user can make; the etag.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_note = models.CharField(max_length=255, blank=True, help_text="What the last change was, for a 412.")

    class Meta:
        abstract = True


class ProvisioningState(models.TextChoices):
    CREATING = "Creating"
    UPDATING = "Updating"
    SCALING = "Scaling"
    DELETING = "Deleting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


class Endpoint(Versioned, BaseModel):
    """An online endpoint: one scoring URL whose traffic is split among its deployments."""

    class AuthMode(models.TextChoices):
        KEY = "key"
        AML_TOKEN = "aml_token"

    name = models.CharField(max_length=32, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices, default=AuthMode.KEY)
    primary_key = models.CharField(max_length=128)
    secondary_key = models.CharField(max_length=128)
    token_secret = models.CharField(max_length=128, help_text="Signs aml_token tokens; never shown.")
    traffic = models.JSONField(default=dict, blank=True)
    mirror_traffic = models.JSONField(default=dict, blank=True)
    public_network_access = models.CharField(max_length=16, default="enabled")
    compute = models.CharField(max_length=255, blank=True)
    local = models.BooleanField(
        default=False,
        help_text="Like Azure's local endpoints (`--local`): no key, and its one deployment takes every request.",
    )
    provisioning_state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.SUCCEEDED
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["provisioning_state", "name"], name="endpoint_state_idx"),
            models.Index(fields=["updated_at"], name="endpoint_updated_idx"),
        ]

    @property
    def scoring_uri(self) -> str:
        return f"{settings.STUDIO_GATEWAY_URL.rstrip('/')}/endpoints/{self.name}/score"

    @property
    def openapi_uri(self) -> str:
        return f"{settings.STUDIO_GATEWAY_URL.rstrip('/')}/endpoints/{self.name}/swagger.json"

    def __str__(self) -> str:
        return self.name


class Deployment(Versioned, BaseModel):
    """One model + code + environment behind an endpoint: the desired spec and the observed state."""

    class Kind(models.TextChoices):
        MANAGED = "managed"
        KUBERNETES = "kubernetes"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=32)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MANAGED)

    # desired spec
    model = models.ForeignKey(Model, null=True, blank=True, on_delete=models.PROTECT, related_name="deployments")
    code_path = models.CharField(max_length=255, blank=True, help_text="Code snapshot, relative to MEDIA_ROOT.")
    scoring_script = models.CharField(max_length=255, blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    environment_variables = models.JSONField(default=dict, blank=True)
    instance_type = models.CharField(max_length=64)
    instance_count = models.PositiveIntegerField(default=1)
    scale_settings = models.JSONField(default=dict, blank=True)
    request_settings = models.JSONField(default=dict, blank=True)
    liveness_probe = models.JSONField(default=dict, blank=True)
    readiness_probe = models.JSONField(default=dict, blank=True)
    extra = models.JSONField(default=dict, blank=True, help_text="Other Azure keys, stored and shown back.")
    generation = models.PositiveIntegerField(default=1, help_text="Bumped on every change of the spec.")

    # observed state
    observed_generation = models.PositiveIntegerField(default=0)
    state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.CREATING, db_index=True
    )
    reason = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    ready_instances = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "name"], name="deployment_endpoint_name_unique")]
        ordering = ["endpoint__name", "name"]
        indexes = [models.Index(fields=["state"], name="deployment_state_idx")]

    @property
    def code_root(self) -> Path | None:
        return Path(settings.MEDIA_ROOT) / self.code_path if self.code_path else None

    def __str__(self) -> str:
        return f"{self.endpoint.name}/{self.name}"


class DeploymentEvent(models.Model):
    """One entry of a deployment's timeline: a state change, a stage, a probe failure, a restart."""

    class Type(models.TextChoices):
        NORMAL = "Normal"
        WARNING = "Warning"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.NORMAL)
    reason = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    instance = models.CharField(max_length=64, blank=True)
    container = models.CharField(max_length=32, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["deployment", "created_at"])]

    def __str__(self) -> str:
        return f"{self.deployment} {self.reason}"


class Instance(models.Model):
    """One running copy of a deployment (a local process or a pod), as the backend last observed it.

    The gateway routes to the ready ones; the reconcile task writes them.
    """

    class State(models.TextChoices):
        PENDING = "Pending"
        STARTING = "Starting"
        READY = "Ready"
        UNREADY = "Unready"
        CRASH_LOOP = "CrashLoopBackOff"
        TERMINATING = "Terminating"
        FAILED = "Failed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=64)
    address = models.CharField(max_length=255, blank=True, help_text="Base URL, e.g. http://127.0.0.1:5012")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    ready = models.BooleanField(default=False, db_index=True)
    generation = models.PositiveIntegerField(default=0, help_text="The spec generation it runs.")
    restarts = models.PositiveIntegerField(default=0)
    pid = models.PositiveIntegerField(null=True, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    message = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="instance_deployment_name_unique")]
        ordering = ["deployment_id", "name"]
        indexes = [models.Index(fields=["ready", "deployment"], name="instance_ready_idx")]  # routing rows

    def __str__(self) -> str:
        return f"{self.deployment_id}/{self.name}"


class InstanceType(models.Model):
    """A catalog row: a VM size with its cores, memory and GPUs (its price is apps.costs' InstancePrice)."""

    name = models.CharField(max_length=64, unique=True)
    vcpus = models.PositiveIntegerField()
    memory_gib = models.DecimalField(max_digits=8, decimal_places=2)
    gpus = models.PositiveIntegerField(default=0)
    gpu_model = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["gpus", "vcpus", "name"]

    def __str__(self) -> str:
        return self.name
