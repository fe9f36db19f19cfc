"""The pure manifest builders: valid for the API server (schemas + semantics) and stable (golden files).

Regenerate the golden files after an intended change with
`STUDIO_REGEN_GOLDEN=1 .venv/bin/pytest tests/kubernetes/test_manifests.py` and review the diff.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from apps.core.errors import ApplicationError
from apps.endpoints.backends.base import InstanceTypeSpec, ProbeSpec
from apps.endpoints.backends.manifests import (
    ManifestOptions,
    build_manifests,
    object_name,
    parse_quantity,
    render_manifests,
)
from tests.kubernetes.checks import VERSIONS, schema_errors, semantic_problems
from tests.kubernetes.specs import OPTIONS, autoscaled_spec, custom_container_spec, make_spec

GOLDEN = Path(__file__).parent / "golden"
SPECS = {
    "fixed-instances": make_spec,
    "autoscaled-gpu-secret": autoscaled_spec,
    "custom-container": custom_container_spec,
}


def _by_kind(manifests: list[dict]) -> dict[str, dict]:
    return {manifest["kind"]: manifest for manifest in manifests}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_manifest_passes_the_strict_official_schema(case: str, version: str) -> None:
    manifests = build_manifests(SPECS[case](), OPTIONS)
    errors = [error for manifest in manifests for error in schema_errors(manifest, version)]
    assert errors == []


@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_manifest_passes_the_semantic_checks_the_schemas_miss(case: str) -> None:
    assert semantic_problems(build_manifests(SPECS[case](), OPTIONS)) == []


def test_semantic_checks_catch_what_the_schemas_let_through() -> None:
    manifests = build_manifests(autoscaled_spec(), OPTIONS)
    kinds = _by_kind(manifests)
    kinds["Deployment"]["spec"]["selector"]["matchLabels"] = {"studio.ml/deployment-uid": "someone-else"}
    kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = 9999
    kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "8"
    kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] = 7
    kinds["Service"]["metadata"]["name"] = "My_Service"

    problems = "\n".join(semantic_problems(manifests))

    assert "selector does not match its pod template labels" in problems
    assert "readinessProbe port 9999 is not a container port" in problems
    assert "requests cpu=8 above its limit 6" in problems
    assert "minReplicas 7 > maxReplicas 5" in problems
    assert "'My_Service' is not a valid Kubernetes name" in problems


def test_the_schema_check_rejects_an_unknown_field_in_strict_mode() -> None:
    deployment = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert schema_errors(deployment, VERSIONS[0]) != []


@pytest.mark.parametrize("case", sorted(SPECS))
def test_rendered_manifests_match_the_golden_file(case: str) -> None:
    rendered = render_manifests(SPECS[case](), OPTIONS)
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("STUDIO_REGEN_GOLDEN"):
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file {golden.name}: run with STUDIO_REGEN_GOLDEN=1"
    assert rendered == golden.read_text()


def test_render_prints_multi_document_yaml_in_apply_order() -> None:
    documents = list(yaml.safe_load_all(render_manifests(autoscaled_spec(), OPTIONS)))
    assert [doc["kind"] for doc in documents] == ["Secret", "Deployment", "Service", "HorizontalPodAutoscaler"]
    assert {doc["metadata"]["name"] for doc in documents} == {"my-endpoint-green"}


def test_deployment_runs_storage_initializer_then_inference_server_with_a_rolling_update() -> None:
    deployment = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]

    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]
    assert server["name"] == "inference-server"
    assert server["command"][-6:] == [
        "--entry_script",
        "/var/azureml-app/code/score.py",
        "--port",
        "5001",
        "--model_dir",
        "/var/azureml-app/azureml-models/sklearn-model/1",
    ]
    env = {item["name"]: item.get("value") for item in server["env"]}
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/sklearn-model/1"
    assert env["WORKER_COUNT"] == "2"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert server["resources"] == {"requests": {"cpu": "2", "memory": "7Gi"}, "limits": {"cpu": "2", "memory": "7Gi"}}
    assert server["livenessProbe"]["periodSeconds"] == 5
    assert server["livenessProbe"]["failureThreshold"] == 3


def test_labels_carry_the_endpoint_and_deployment_ids() -> None:
    spec = make_spec()
    for manifest in build_manifests(spec, OPTIONS):
        assert manifest["metadata"]["labels"]["studio.ml/deployment-uid"] == spec.uid
        assert manifest["metadata"]["labels"]["studio.ml/endpoint-uid"] == spec.endpoint_uid


def test_sensitive_variables_and_download_urls_live_in_the_secret_not_the_pod_spec() -> None:
    kinds = _by_kind(build_manifests(autoscaled_spec(), OPTIONS))
    secret = {key: base64.b64decode(value).decode() for key, value in kinds["Secret"]["data"].items()}
    pod_yaml = yaml.safe_dump(kinds["Deployment"])

    assert secret["OPENAI_API_KEY"] == "sk-test"
    assert secret["STUDIO_MODEL_URL"] == OPTIONS.model_url
    assert "sk-test" not in pod_yaml and "model-token" not in pod_yaml


def test_new_download_urls_do_not_change_the_pod_template_but_a_new_secret_value_does() -> None:
    def template(spec, options):
        return _by_kind(build_manifests(spec, options))["Deployment"]["spec"]["template"]

    resigned = replace(OPTIONS, model_url=OPTIONS.model_url + "-later")
    changed = autoscaled_spec(environment_variables={"WORKER_COUNT": "1", "OPENAI_API_KEY": "sk-rotated"})
    assert template(autoscaled_spec(), OPTIONS) == template(autoscaled_spec(), resigned)
    assert template(autoscaled_spec(), OPTIONS) != template(changed, OPTIONS)


def test_target_utilization_makes_an_hpa_and_leaves_replicas_to_it() -> None:
    kinds = _by_kind(build_manifests(autoscaled_spec(), OPTIONS))
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]

    assert "replicas" not in kinds["Deployment"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 5)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    gpu = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert gpu == "1"


def test_default_scale_settings_make_no_hpa() -> None:
    assert "HorizontalPodAutoscaler" not in _by_kind(build_manifests(make_spec(), OPTIONS))


def test_custom_container_probes_and_ports_come_from_inference_config() -> None:
    server = _by_kind(build_manifests(custom_container_spec(), OPTIONS))["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert server["ports"] == [{"name": "http", "containerPort": 8501, "protocol": "TCP"}]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v1/models/half_plus_two", "port": 8501}
    assert server["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_hpa_min_above_max_is_rejected_naming_both_fields() -> None:
    spec = autoscaled_spec(scale_settings={"type": "target_utilization", "min_instances": 4, "max_instances": 2})
    with pytest.raises(
        ApplicationError, match=r"scale_settings.min_instances \(4\) must not exceed .*max_instances \(2\)"
    ):
        build_manifests(spec, OPTIONS)


def test_requests_above_limits_are_rejected_naming_the_resource() -> None:
    spec = custom_container_spec(resources={"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}})
    with pytest.raises(ApplicationError, match=r"resources.requests.memory \(4Gi\) must not exceed"):
        build_manifests(spec, OPTIONS)


def test_liveness_success_threshold_other_than_one_is_rejected() -> None:
    with pytest.raises(ApplicationError, match="liveness_probe.success_threshold must be 1, got 2"):
        build_manifests(make_spec(liveness_probe=ProbeSpec(success_threshold=2)), OPTIONS)


def test_long_or_mixed_case_names_become_valid_dns_labels() -> None:
    spec = make_spec(endpoint_name="A-Very-Long-Endpoint-Name-Of-32c", name="Deployment-Name-Of-32-Characters")
    name = object_name(spec)
    assert len(name) <= 47 and name == name.lower() and name[0].isalpha()
    assert semantic_problems(build_manifests(spec, OPTIONS)) == []
    assert object_name(make_spec(name="other")) != object_name(spec)


def test_fractional_memory_becomes_mebibytes() -> None:
    spec = make_spec(instance_type=InstanceTypeSpec(name="Small", vcpus=1, memory_gib=1.5))
    server = _by_kind(build_manifests(spec, OPTIONS))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"]["memory"] == "1536Mi"


def test_quantities_parse_like_kubernetes() -> None:
    assert parse_quantity("500m") < parse_quantity("1") < parse_quantity("1.5") == parse_quantity("1500m")
    assert parse_quantity("1Gi") == 1024 * parse_quantity("1Mi")
    with pytest.raises(ApplicationError, match="'12XB' is not a Kubernetes quantity"):
        parse_quantity("12XB")


def test_render_without_options_uses_the_default_namespace_and_no_download_urls() -> None:
    documents = list(yaml.safe_load_all(render_manifests(make_spec())))
    assert documents[0]["metadata"]["namespace"] == ManifestOptions().namespace
    assert "STUDIO_MODEL_URL" not in documents[0]["data"]


def test_custom_container_runs_its_image_entrypoint() -> None:
    deployment = _by_kind(build_manifests(custom_container_spec(), OPTIONS))["Deployment"]
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in server and server["image"] == "docker.io/tensorflow/serving:2.16.1"
