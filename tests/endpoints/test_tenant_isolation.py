"""Deployed code is a tenant: a real score.py, run by the local backend as an unprivileged user, prying.

The studio runs as root here, as `studio up` does on this machine; STUDIO_TENANT_ISOLATION=on (what `auto`
means for root) makes instances and builds run as `studio-tenant` users. The umask is the one `studio up` sets.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from apps.core import filemodes
from apps.endpoints import tenant
from apps.endpoints.models import Deployment, Instance
from tests import factories
from tests.endpoints.conftest import SCORE_PY, kill_instances, score
from tests.endpoints.test_local_backend import settle

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (a non-root studio runs code as itself)"),
]

PRYING_SCORE_PY = """\
import json, os

def init():
    pass

def run(raw_data):
    targets = json.loads(raw_data)
    found = {}
    for name, path in targets.items():
        try:
            if os.path.isdir(path):
                found[name] = "listed " + ",".join(sorted(os.listdir(path)))
            else:
                with open(path, "rb") as handle:
                    found[name] = "read %d bytes" % len(handle.read())
        except OSError as exc:
            found[name] = type(exc).__name__
    who = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    return {"found": found, "environ": sorted(os.environ), **who}
"""

ALLOWED_VARIABLES = {
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "PYTHONUNBUFFERED",
    "VIRTUAL_ENV",
    "AML_APP_ROOT",
    "AZUREML_MODEL_DIR",
    "AZUREML_ENTRY_SCRIPT",
    "SCORING_TIMEOUT_MS",
    "SERVICE_NAME",
    "AZUREML_DEPLOYMENT_NAME",
    "WORKER_COUNT",
    "SERVER_PORT",
    "STUDIO_INFSRV_HOST",
    "HTTP_X_MS_SERVER_VERSION",  # the runtime's own, as azmlinfsrv sets it
    "MY_SETTING",  # the deployment's own variable
}


@pytest.fixture
def as_tenants(settings: Any, local: Path) -> Iterator[Path]:
    """The local backend with tenants on, its folders under STUDIO_HOME, and `studio up`'s umask."""
    home = Path(settings.STUDIO_HOME)
    settings.STUDIO_TENANT_ISOLATION = "on"
    settings.STUDIO_INSTANCES_DIR = home / f"instances-{uuid.uuid4().hex[:8]}"
    settings.STUDIO_ENVS_DIR = home / "tenant-envs"  # shared by this run's tenant tests: built once
    secret = home / "secret_key"
    if not secret.exists():
        secret.write_text("not-the-real-one")
    previous = os.umask(filemodes.UMASK)
    filemodes.secure_start(home)  # what `studio up` does first: umask 077, anything others could read narrowed
    try:
        yield home
    finally:
        os.umask(previous)
        kill_instances(Path(settings.STUDIO_INSTANCES_DIR))


def deploy(name: str, script: str, **overrides: Any) -> Deployment:
    from apps.endpoints.models import Endpoint

    endpoint = Endpoint.objects.filter(name="ep1").first() or factories.endpoint("ep1")
    code = factories.upload_folder({"score.py": script})
    deployment = settle(factories.deployment(endpoint, name, code=code, **overrides), timeout=300)
    assert deployment.state == "Succeeded", deployment.message
    return deployment


def test_deployed_code_reads_only_its_own_files_and_only_the_gateway_may_call_it(
    as_tenants: Path, settings: Any
) -> None:
    home = as_tenants
    other = deploy("green", SCORE_PY)
    prying = deploy("blue", PRYING_SCORE_PY, environment_variables={"MY_SETTING": "1"})
    [row] = Instance.objects.filter(deployment=prying)
    [other_row] = Instance.objects.filter(deployment=other)
    instances = Path(settings.STUDIO_INSTANCES_DIR)
    own_code = instances / str(prying.uid) / row.name / "var" / "azureml-app" / "code" / "score.py"
    database = Path(str(connection.settings_dict["NAME"]))
    targets = {
        "secret_key": str(home / "secret_key"),
        "studio_home": str(home),
        "instances": str(instances),
        "other_code": str(instances / str(other.uid) / other_row.name / "var" / "azureml-app" / "code" / "score.py"),
        "other_instance": str(instances / str(other.uid) / other_row.name / "var"),
        "own_logs": str(instances / str(prying.uid) / row.name / "logs" / "inference-server.log"),
        "own_state": str(instances / str(prying.uid) / row.name / "state.json"),
        "worker_environment": f"/proc/{os.getpid()}/environ",
        "own_code": str(own_code),
    }
    if database.is_file():  # the embedded SQLite file (with DATABASE_URL the database is not on this disk)
        targets["database"] = str(database)

    answer = score(row.address, targets)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    found = body["found"]
    assert found["own_code"] == f"read {own_code.stat().st_size} bytes"  # the probe can read what is its own
    for name in targets.keys() - {"own_code"}:
        assert found[name] == "PermissionError", (name, found[name])
    expected = tenant.for_deployment(str(prying.uid))
    assert expected is not None and body["uid"] == expected.uid != 0
    assert (body["gid"], body["groups"]) == (tenant.group_id(), [])  # none of the studio's groups
    assert set(body["environ"]) <= ALLOWED_VARIABLES, set(body["environ"]) - ALLOWED_VARIABLES
    assert "MY_SETTING" in body["environ"]

    # A local process calling the instance's port directly, without the gateway's secret, is refused.
    direct = httpx.post(f"{row.address}/score", json=targets, timeout=10)
    assert direct.status_code == 403
    assert "answers only the studio's gateway" in direct.json()["message"]


SYSTEM_PYTHON = "/usr/bin/python3"  # the studio's own Python lives under /root here, out of nobody's reach
NOBODY_PROBE = """
import json, os, sys
readable = []
for path in json.load(sys.stdin):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").close()
        readable.append(path)
    except OSError:
        pass
print(json.dumps(readable))
"""


def test_after_a_deployment_nothing_under_studio_home_is_readable_by_other_users(
    as_tenants: Path, settings: Any
) -> None:
    home = as_tenants
    deployment = deploy("blue", SCORE_PY)
    filemodes.secure_start(home)  # what `studio up` does at start, on the test run's STUDIO_HOME
    flow = [Path(settings.STUDIO_INSTANCES_DIR), Path(settings.STUDIO_ENVS_DIR), home / "secret_key"]

    assert [path for root in flow for path in filemodes.wider_than_allowed(root)] == []

    paths = [str(home)]
    for root in flow:
        paths += [str(root)] + [str(Path(d) / n) for d, dirs, files in os.walk(root) for n in (*dirs, *files)]
    nobody = pwd.getpwnam("nobody")
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", NOBODY_PROBE],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
    )
    assert json.loads(done.stdout) == []  # another local user reads nothing, not even a listing

    # The tenants' group may traverse (not list) the folders to an instance's files and read environments;
    # an instance's own files belong to its deployment's uid alone.
    [row] = Instance.objects.filter(deployment=deployment)
    folder = Path(settings.STUDIO_INSTANCES_DIR) / str(deployment.uid) / row.name
    identity = tenant.for_deployment(str(deployment.uid))
    assert identity is not None
    for path in (home, Path(settings.STUDIO_INSTANCES_DIR), folder.parent, folder):
        assert (path.stat().st_mode & 0o777, path.stat().st_gid) == (0o710, tenant.group_id()), path
    for path in (folder / "var").rglob("*"):
        assert path.lstat().st_uid == identity.uid and path.lstat().st_mode & 0o077 == 0, path
    for name in ("state.json", "logs/inference-server.log", "logs/storage-initializer.log"):
        info = (folder / name).stat()
        assert (info.st_uid, info.st_mode & 0o077) == (0, 0), name
