"""The backend seam: frozen specs in, observed status out. Celery tasks are the only callers.

Backends never see Django model instances; `apps.endpoints.selectors.deployment_spec` builds the
spec from the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

Container = Literal["inference-server", "storage-initializer"]


@dataclass(frozen=True)
class ProbeSpec:
    """Azure's ProbeSettings, in seconds."""

    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    success_threshold: int = 1
    failure_threshold: int = 30


@dataclass(frozen=True)
class RequestSpec:
    """Azure's request_settings."""

    request_timeout_ms: int = 5000
    max_concurrent_requests_per_instance: int = 1
    max_queue_wait_ms: int = 500


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an instance's software is built from."""

    name: str
    version: str
    image: str
    conda_file: Mapping[str, object] | None
    pip_requirements: str
    spec_hash: str
    inference_config: Mapping[str, object] | None = None


@dataclass(frozen=True)
class InstanceTypeSpec:
    """The size of one instance."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything a backend needs to run one deployment at one generation."""

    uid: str
    name: str
    endpoint_uid: str
    endpoint_name: str
    generation: int
    environment: EnvironmentSpec
    instance_type: InstanceTypeSpec
    instance_count: int
    model_asset: str | None = None  # azureml:name:version
    model_root: str | None = None  # local folder holding the model's own file or folder
    model_path_name: str | None = None  # the model's own file or folder name
    model_type: str = "custom_model"
    model_uid: str | None = None  # the registered version's uid: its files never change, so it is their digest
    model_size: int = 0  # bytes
    code_root: str | None = None  # local folder of the code snapshot
    code_digest: str | None = None  # the snapshot's content digest (its folder name: snapshots are content-addressed)
    code_size: int = 0  # bytes
    scoring_script: str | None = None  # relative to code_root
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    request: RequestSpec = RequestSpec()
    liveness_probe: ProbeSpec = ProbeSpec()
    readiness_probe: ProbeSpec = ProbeSpec()
    scale_settings: Mapping[str, object] = field(default_factory=dict)
    resources: Mapping[str, Mapping[str, str]] | None = None


@dataclass(frozen=True)
class InstanceStatus:
    """One instance as the backend sees it."""

    name: str
    state: str  # one of apps.endpoints.models.Instance.State
    ready: bool
    address: str = ""
    generation: int = 0
    restarts: int = 0
    pid: int | None = None
    port: int | None = None
    started_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True)
class InstanceUsage:
    """What one instance uses now: memory bytes, and CPU as a rate or as CPU time.

    A backend that reads a rate (Kubernetes' metrics API: cores in use) gives `cpu_cores`; one that
    reads a process's CPU time (the local backend) gives `cpu_seconds` and the `pid` it was read from,
    and the rate comes from two readings of the same process.
    """

    memory_bytes: int
    cpu_cores: float | None = None
    cpu_seconds: float | None = None
    pid: int | None = None
    disk_bytes: int | None = None  # what the instance's own folder holds (model, code, logs); None if unknown


@dataclass(frozen=True)
class BackendEvent:
    """Something that happened to an instance, for the deployment's timeline."""

    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    instance: str = ""
    container: str = ""
    at: datetime | None = None
    # Who reports the same event again (Kubernetes' event uid) and how often it happened: one timeline row, counted.
    key: str = ""
    count: int = 1


@dataclass(frozen=True)
class Observed:
    """The deployment as it runs now."""

    instances: tuple[InstanceStatus, ...] = ()
    failed_reason: str = ""  # Azure-style reason when the deployment cannot become ready
    failed_message: str = ""
    # What happened that the backend's reporter (if it has one) was not already told; the caller records
    # each distinct event once, so a backend may report the same event on every pass (Kubernetes pod events).
    events: tuple[BackendEvent, ...] = ()
    # How many instances should be ready now, when the backend knows better than the spec (an HPA owns the count).
    desired_instances: int | None = None
    # False while the backend's own rollout is not done (Kubernetes: observedGeneration, updated and available
    # replicas); None when the backend has no such notion and ready instances of the generation decide.
    rollout_complete: bool | None = None

    @property
    def ready_count(self) -> int:
        return sum(1 for instance in self.instances if instance.ready)


class BackendUnavailable(Exception):
    """A transient failure of what the backend talks to (an API server down, a timeout): try again later."""


class Reporter(Protocol):
    """Receives what a backend does while it works (the reconcile task writes it to the database)."""

    def event(self, event: BackendEvent, duration_ms: int | None = None) -> None:
        """One event for the deployment's timeline, as it happens."""
        ...

    def observed(self, observed: Observed) -> None:
        """The instances now, before the backend goes on (instances leaving routing before they stop)."""
        ...


class Backend(Protocol):
    """Runs deployments. Every method is idempotent and safe to call from several workers.

    What a backend needs beyond the spec (a reporter, timings, an API client) it takes in its
    constructor; callers never ask which kind of backend they hold.
    """

    def apply(self, spec: DeploymentSpec) -> Observed:
        """Move the running instances toward a new spec (create, patch, scale, roll) and report."""
        ...

    def supervise(self, spec: DeploymentSpec) -> Observed:
        """The periodic pass at an applied spec: keep it running (restarts, probes) within a bounded time; report."""
        ...

    def observe(self, spec: DeploymentSpec) -> Observed:
        """Report the instances without changing anything."""
        ...

    def delete(self, spec: DeploymentSpec) -> None:
        """Stop every instance and free what they held."""
        ...

    def logs(
        self,
        spec: DeploymentSpec,
        *,
        container: Container,
        lines: int,
        instance: str | None = None,
        previous: bool = False,
    ) -> str:
        """The last `lines` lines of one container's log (all instances when `instance` is None)."""
        ...

    def usage(self, spec: DeploymentSpec) -> dict[str, InstanceUsage]:
        """What each running instance uses now, by instance name ({} when the backend cannot tell)."""
        ...
