"""The pure manifest builders: valid for the API server (schemas + semantics) and stable (golden files).

Regenerate the golden files after an intended change with
`STUDIO_REGEN_GOLDEN=1 .venv/bin/pytest tests/kubernetes/test_manifests.py` and review the diff.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from apps.core.errors import ApplicationError
from apps.endpoints.backends.base import EnvironmentSpec, InstanceTypeSpec, ProbeSpec, RequestSpec
from apps.endpoints.backends.manifests import (
    ManifestOptions,
    build_manifests,
    object_name,
    parse_quantity,
    render_manifests,
    toleration,
)
from tests.kubernetes.checks import VERSIONS, schema_errors, semantic_problems
from tests.kubernetes.specs import CODE_DIGEST, MODEL_UID, OPTIONS, autoscaled_spec, custom_container_spec, make_spec

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
    assert [doc["kind"] for doc in documents] == [
        "Secret",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]
    assert {doc["metadata"]["name"] for doc in documents} == {"my-endpoint-green-0b7e5a39"}


def test_deployment_runs_the_runtime_and_storage_initializers_then_the_inference_server() -> None:
    deployment = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]

    assert [c["name"] for c in pod["initContainers"]] == ["studio-runtime", "storage-initializer"]
    assert server["name"] == "inference-server"
    assert server["command"] == [
        "/var/studio-runtime/bin/studio-infsrv",
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
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "25%"}
    assert server["livenessProbe"]["periodSeconds"] == 5
    assert server["livenessProbe"]["failureThreshold"] == 3


def test_labels_carry_the_endpoint_and_deployment_ids() -> None:
    spec = make_spec()
    for manifest in build_manifests(spec, OPTIONS):
        assert manifest["metadata"]["labels"]["studio.ml/deployment-uid"] == spec.uid
        assert manifest["metadata"]["labels"]["studio.ml/endpoint-uid"] == spec.endpoint_uid


def test_sensitive_variables_and_the_download_credential_live_in_the_secret_not_the_pod_spec() -> None:
    kinds = _by_kind(build_manifests(autoscaled_spec(), OPTIONS))
    secret = {key: base64.b64decode(value).decode() for key, value in kinds["Secret"]["data"].items()}
    pod_yaml = yaml.safe_dump(kinds["Deployment"])

    assert secret["OPENAI_API_KEY"] == "sk-test"
    assert secret["STUDIO_DOWNLOAD_TOKEN"] == OPTIONS.download_token
    assert "sk-test" not in pod_yaml and OPTIONS.download_token not in pod_yaml


def test_a_new_credential_does_not_change_the_pod_template_but_new_code_or_a_new_secret_value_does() -> None:
    def template(spec, options):
        return _by_kind(build_manifests(spec, options))["Deployment"]["spec"]["template"]

    resigned = replace(OPTIONS, download_token="another-credential")
    changed = autoscaled_spec(environment_variables={"WORKER_COUNT": "1", "OPENAI_API_KEY": "sk-rotated"})
    new_code = autoscaled_spec(code_root="/srv/code/0123456789abcdef", code_digest="0123456789abcdef")
    assert template(autoscaled_spec(), OPTIONS) == template(autoscaled_spec(), resigned)
    assert template(autoscaled_spec(), OPTIONS) != template(changed, OPTIONS)
    assert template(autoscaled_spec(), OPTIONS) != template(new_code, OPTIONS)
    assert template(autoscaled_spec(), OPTIONS) != template(autoscaled_spec(), replace(OPTIONS, runtime_image="r:2"))


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
    assert server["startupProbe"]["httpGet"] == {"path": "/v1/models/half_plus_two", "port": 8501}
    assert server["resources"]["requests"]["cpu"] == "500m" and server["resources"]["requests"]["memory"] == "1Gi"


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


def test_long_or_mixed_case_names_become_valid_dns_labels_with_the_uid() -> None:
    spec = make_spec(endpoint_name="A-Very-Long-Endpoint-Name-Of-32c", name="Deployment-Name-Of-32-Characters")
    name = object_name(spec)
    assert len(name) <= 47 and name == name.lower() and name[0].isalpha() and name.endswith("-0b7e5a39")
    assert semantic_problems(build_manifests(spec, OPTIONS)) == []
    assert object_name(make_spec(name="other")) != object_name(spec)


def test_fractional_memory_becomes_mebibytes() -> None:
    spec = make_spec(instance_type=InstanceTypeSpec(name="Small", vcpus=1, memory_gib=1.5))
    server = _by_kind(build_manifests(spec, OPTIONS))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"]["memory"] == "1536Mi"
    assert server["resources"]["requests"]["memory"] == "361Mi"


def test_quantities_parse_like_kubernetes() -> None:
    assert parse_quantity("500m") < parse_quantity("1") < parse_quantity("1.5") == parse_quantity("1500m")
    assert parse_quantity("1Gi") == 1024 * parse_quantity("1Mi")
    with pytest.raises(ApplicationError, match="'12XB' is not a Kubernetes quantity"):
        parse_quantity("12XB")


def test_render_without_options_uses_the_default_namespace_and_no_downloads() -> None:
    documents = list(yaml.safe_load_all(render_manifests(make_spec())))
    assert documents[0]["metadata"]["namespace"] == ManifestOptions().namespace == "studio-workloads"
    assert "STUDIO_DOWNLOAD_TOKEN" not in documents[0]["data"]


def test_custom_container_runs_its_image_entrypoint() -> None:
    deployment = _by_kind(build_manifests(custom_container_spec(), OPTIONS))["Deployment"]
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in server and server["image"] == "docker.io/tensorflow/serving:2.16.1"
    init = [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]]
    assert init == ["storage-initializer"]  # its own server: no runtime to copy in


# --- what `studio online-deployment render` must show (issue 20) ---


def test_any_image_serves_through_the_runtime_bundle_the_init_container_copies_in() -> None:
    """Finding 3: images without `studio-infsrv` (Azure's base images, users' own) failed to start."""
    azure = EnvironmentSpec(
        name="azure",
        version="1",
        image="mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest",
        conda_file=None,
        pip_requirements="scikit-learn\n",
        spec_hash="az",
    )
    pod = _by_kind(build_manifests(make_spec(environment=azure), OPTIONS))["Deployment"]["spec"]["template"]["spec"]
    runtime = pod["initContainers"][0]
    server = pod["containers"][0]

    assert runtime["image"] == OPTIONS.runtime_image and runtime["command"][-1] == "/var/studio-runtime/"
    assert server["image"] == azure.image
    assert server["command"][0] == "/var/studio-runtime/bin/studio-infsrv"
    assert {"name": "studio-runtime", "mountPath": "/var/studio-runtime", "readOnly": True} in server["volumeMounts"]


def test_requests_fit_a_node_of_the_instance_types_size_and_limits_are_the_size() -> None:
    """Finding 10: Standard_DS2_v2 asked 2 CPU / 7 GiB, which never fits a node of that size."""
    server = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    requests, limits = server["resources"]["requests"], server["resources"]["limits"]

    assert (requests["cpu"], requests["memory"]) == ("1830m", "4301Mi")
    assert (limits["cpu"], limits["memory"]) == ("2", "7Gi")
    assert parse_quantity(requests["ephemeral-storage"]) >= 200 * 1024**2  # the model's size, and room to work


def test_a_gpu_instance_type_tolerates_the_gpu_taints_and_requests_its_gpus() -> None:
    options = replace(OPTIONS, gpu_node_selector={"accelerator": "nvidia"})
    pod = _by_kind(build_manifests(autoscaled_spec(), options))["Deployment"]["spec"]["template"]["spec"]
    server = pod["containers"][0]

    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    assert server["resources"]["requests"]["nvidia.com/gpu"] == server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert (
        "tolerations" not in _by_kind(build_manifests(make_spec(), options))["Deployment"]["spec"]["template"]["spec"]
    )


def test_tolerations_are_read_in_kubectls_taint_syntax() -> None:
    assert toleration("sku=gpu:NoSchedule") == {
        "key": "sku",
        "operator": "Equal",
        "value": "gpu",
        "effect": "NoSchedule",
    }
    with pytest.raises(ApplicationError, match="'sku=gpu' is not `key:Effect`"):
        toleration("sku=gpu")


def test_several_instances_get_a_disruption_budget_and_spread_over_zones_and_nodes() -> None:
    kinds = _by_kind(build_manifests(make_spec(instance_count=3), OPTIONS))
    spread = kinds["Deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]

    assert kinds["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"studio.ml/deployment-uid": make_spec().uid}},
    }
    assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    single = _by_kind(build_manifests(make_spec(instance_count=1), OPTIONS))
    assert "PodDisruptionBudget" not in single
    assert "topologySpreadConstraints" not in single["Deployment"]["spec"]["template"]["spec"]


def test_a_terminating_pod_pauses_then_drains_for_longer_than_the_request_timeout() -> None:
    """Finding 9: a 30 s grace period and a 10 s drain while request_timeout_ms may be 180 s."""
    spec = make_spec(request=RequestSpec(request_timeout_ms=180_000))
    pod = _by_kind(build_manifests(spec, OPTIONS))["Deployment"]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    drain = int(next(e["value"] for e in server["env"] if e["name"] == "STUDIO_DRAIN_S"))

    assert server["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert drain >= 180
    assert pod["terminationGracePeriodSeconds"] >= 5 + drain


def test_init_gets_a_startup_probe_before_liveness_may_restart_it() -> None:
    server = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    probe = server["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


def test_pods_meet_pod_security_restricted() -> None:
    pod = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_the_template_carries_the_digests_of_code_model_and_environment() -> None:
    template = _by_kind(build_manifests(make_spec(), OPTIONS))["Deployment"]["spec"]["template"]
    assert json.loads(template["metadata"]["annotations"]["studio.ml/digests"]) == {
        "code": CODE_DIGEST,
        "model": MODEL_UID,
        "environment": "abc123",
    }
    init = template["spec"]["initContainers"][1]
    env = {item["name"]: item.get("value") for item in init["env"]}
    assert env["STUDIO_CODE_URL"] == f"https://studio.example.com/api/v1/downloads/code/{CODE_DIGEST}"
    assert env["STUDIO_MODEL_URL"] == f"https://studio.example.com/api/v1/downloads/model/{MODEL_UID}"
