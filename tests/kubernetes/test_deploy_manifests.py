"""deploy/kubernetes: the manifests that run the studio itself pass the same checks as the builders' output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.kubernetes.checks import VERSIONS, schema_errors, semantic_problems

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> list[dict]:
    documents = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    present = {path.name for path in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "studio-secrets.example.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", VERSIONS)
def test_studio_manifests_pass_the_strict_official_schema(version: str) -> None:
    errors = [error for doc in _documents() for error in schema_errors(doc, version)]
    assert errors == []


def test_studio_manifests_pass_the_semantic_checks() -> None:
    assert semantic_problems(_documents()) == []


def test_web_gateway_worker_and_beat_are_all_there() -> None:
    deployments = {doc["metadata"]["name"] for doc in _documents() if doc["kind"] == "Deployment"}
    assert deployments == {"studio-web", "studio-gateway", "studio-worker", "studio-beat"}
