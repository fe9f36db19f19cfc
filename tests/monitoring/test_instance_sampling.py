"""CPU and memory of local instances, read by the local backend with psutil from the processes it started."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.utils import timezone

from apps.endpoints.backends.local import state
from apps.endpoints.backends.local.state import InstanceState
from apps.endpoints.models import Deployment, Instance
from apps.monitoring import selectors, services
from apps.monitoring.models import InstanceSample
from tests import factories

pytestmark = pytest.mark.django_db

BUSY = "import time\nend = time.time() + 20\nwhile time.time() < end:\n    pass\n"
IDLE = "import time\ntime.sleep(20)\n"


def running_locally(deployment: Deployment, name: str, pid: int) -> None:
    """A local instance as the local backend records it: its Instance row and its own state file."""
    Instance.objects.create(deployment=deployment, name=name, pid=pid, state=Instance.State.READY)
    try:
        created: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        created = None
    record = InstanceState(name=name, index=0, template="t", generation=1, pid=pid, create_time=created, ready=True)
    state.save(Path(settings.STUDIO_INSTANCES_DIR) / str(deployment.uid), record)


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started = {
        "blue-1": subprocess.Popen([sys.executable, "-c", BUSY]),
        "blue-2": subprocess.Popen([sys.executable, "-c", IDLE]),
    }
    yield started
    for process in started.values():
        process.kill()
        process.wait(timeout=10)


def test_busy_and_idle_instances_are_told_apart(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deployment = factories.deployment(factories.endpoint("ep1"), "blue", instance_type="Standard_DS2_v2")
    for name, process in processes.items():
        running_locally(deployment, name, process.pid)

    assert services.instances_sample() == 2
    time.sleep(1.5)
    assert services.instances_sample() == 2

    latest = {s.instance: s for s in InstanceSample.objects.order_by("ts")}
    busy, idle = latest["blue-1"], latest["blue-2"]
    # A busy loop holds up to one of the DS2's two cores: at most 50 %, and well above the sleeper.
    assert busy.cpu_percent is not None and 5 < busy.cpu_percent <= 55
    assert idle.cpu_percent is not None and idle.cpu_percent < 2
    assert busy.memory_bytes > 1_000_000
    assert busy.memory_percent == round(100 * busy.memory_bytes / (7 * 1024**3), 2)

    now = timezone.now()
    series = selectors.metric_series(
        endpoint="ep1", metric="CpuUtilizationPercentage", start=now - timedelta(minutes=1), end=now
    )
    assert [s["dimensions"] for s in series] == [
        {"deployment": "blue", "instanceId": "blue-1"},
        {"deployment": "blue", "instanceId": "blue-2"},
    ]


def test_a_gone_process_is_skipped(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    gone = processes["blue-2"]
    gone.kill()
    gone.wait(timeout=10)
    running_locally(deployment, "blue-2", gone.pid)
    assert services.instances_sample() == 0
    assert not InstanceSample.objects.exists()


def test_a_rate_reading_as_kubernetes_metrics_give_it_is_stored_as_a_percentage() -> None:
    sample = services.instance_sample_record(
        endpoint="ep1",
        deployment="blue",
        instance="blue-7d9f-abc",
        pid=None,
        cpu_seconds=0,
        cpu_cores=1.5,
        memory_bytes=2 * 1024**3,
        vcpus=4,
        memory_gib=16,
    )
    assert (sample.cpu_percent, sample.memory_percent) == (37.5, 12.5)


def test_disk_is_what_the_instance_folder_holds(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deployment = factories.deployment(factories.endpoint("ep1"), "blue", instance_type="Standard_DS2_v2")
    running_locally(deployment, "blue-1", processes["blue-1"].pid)
    folder = Path(settings.STUDIO_INSTANCES_DIR) / str(deployment.uid) / "blue-1"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\0" * 3 * 1024 * 1024)
    (folder / "logs").mkdir()
    (folder / "logs" / "inference-server.log").write_bytes(b"x" * 1000)

    assert services.instances_sample() == 1

    sample = InstanceSample.objects.get(instance="blue-1")
    # The model and the log, and the instance's own small state file beside them.
    assert sample.disk_bytes is not None and 0 <= sample.disk_bytes - (3 * 1024 * 1024 + 1000) < 4096
