"""DeploymentSpec builders for the Kubernetes tests: no database needed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from apps.endpoints.backends.base import DeploymentSpec, EnvironmentSpec, InstanceTypeSpec, ProbeSpec
from apps.endpoints.backends.manifests import ManifestOptions

DEPLOYMENT_UID = "0b7e5a39-6a0e-4f3c-9a51-1d6d3c2b9f10"
ENDPOINT_UID = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"

MODEL_UID = "7c1d9e2a-3b4f-4a5e-8d6c-0f1e2d3c4b5a"
CODE_DIGEST = "5e884898da28047151d0e56f8dc62927"
OPTIONS = ManifestOptions(
    namespace="studio",
    studio_url="https://studio.example.com",
    download_token="credential-token",
)


def make_spec(**changes: Any) -> DeploymentSpec:
    """A typical deployment (model, code, pip requirements, 2 instances of Standard_DS2_v2); override any field."""
    spec = DeploymentSpec(
        uid=DEPLOYMENT_UID,
        name="blue",
        endpoint_name="my-endpoint",
        endpoint_uid=ENDPOINT_UID,
        generation=3,
        environment=EnvironmentSpec(
            name="sklearn-env",
            version="1",
            image="ghcr.io/studio-ml/runtime:0.1.0",
            conda_file=None,
            pip_requirements="scikit-learn==1.5.1\n",
            spec_hash="abc123",
        ),
        instance_type=InstanceTypeSpec(name="Standard_DS2_v2", vcpus=2, memory_gib=7.0),
        instance_count=2,
        model_asset="azureml:sklearn-model:1",
        model_path_name="model.pkl",
        model_uid=MODEL_UID,
        model_size=200 * 1024**2,
        code_root=f"/srv/studio/media/code/{CODE_DIGEST}",
        code_digest=CODE_DIGEST,
        code_size=12 * 1024,
        scoring_script="score.py",
        environment_variables={"WORKER_COUNT": "2"},
        liveness_probe=ProbeSpec(initial_delay=5, period=5, failure_threshold=3),
    )
    return replace(spec, **changes)


def autoscaled_spec(**changes: Any) -> DeploymentSpec:
    """Azure's Kubernetes default: an HPA on CPU, with a secret variable and a GPU size."""
    base = make_spec(
        name="green",
        scale_settings={
            "type": "target_utilization",
            "min_instances": 1,
            "max_instances": 5,
            "target_utilization_percentage": 60,
        },
        instance_type=InstanceTypeSpec(name="Standard_NC6s_v3", vcpus=6, memory_gib=112.0, gpus=1),
        environment_variables={"WORKER_COUNT": "1", "OPENAI_API_KEY": "sk-test"},
    )
    return replace(base, **changes)


def custom_container_spec(**changes: Any) -> DeploymentSpec:
    """A custom container: own routes from inference_config, explicit resources, no code."""
    base = make_spec(
        name="custom",
        environment=EnvironmentSpec(
            name="tfserving",
            version="2",
            image="docker.io/tensorflow/serving:2.16.1",
            conda_file=None,
            pip_requirements="",
            spec_hash="def456",
            inference_config={
                "liveness_route": {"port": 8501, "path": "/v1/models/half_plus_two"},
                "readiness_route": {"port": 8501, "path": "/v1/models/half_plus_two"},
                "scoring_route": {"port": 8501, "path": "/v1/models/half_plus_two:predict"},
            },
        ),
        code_root=None,
        code_digest=None,
        code_size=0,
        scoring_script=None,
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        instance_count=1,
    )
    return replace(base, **changes)
