"""Fixtures for the Kubernetes backend tests: a fake API server reached over HTTP by the real client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints.backends.kubernetes import KubernetesBackend
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.specs import OPTIONS


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def backend(cluster: FakeCluster, settings: Any, tmp_path: Path) -> KubernetesBackend:
    """The backend as the studio builds it: from settings, through a kubeconfig file naming the fake server."""
    settings.STUDIO_KUBECONFIG = str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    settings.STUDIO_KUBE_CONTEXT = "fake"
    settings.STUDIO_KUBE_NAMESPACE = "studio"
    # Fixed download URLs: what is signed is tested on its own (test_signed_urls.py).
    return KubernetesBackend(options=lambda spec, previous: replace(OPTIONS, namespace="studio"))
