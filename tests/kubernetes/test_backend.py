"""The Kubernetes backend through the real `kubernetes` client, over HTTP, against the fake API server.

The test plays the cluster's controllers openly: it creates the pods from the stored Deployment's
template and writes their status and events, as the ReplicaSet controller, the scheduler and the
kubelet would.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from typing import Any

import pytest
import yaml
from kubernetes import client  # the tests check the fake with the real client

from apps.core.errors import NotFound
from apps.endpoints.backends.base import EnvironmentSpec
from apps.endpoints.backends.kubernetes import KubernetesBackend, KubernetesUnavailable, shared_api_client
from apps.endpoints.backends.manifests import build_manifests, object_name
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.specs import OPTIONS, autoscaled_spec, make_spec

NAME = object_name(make_spec())
GREEN = object_name(autoscaled_spec())


# --- the test as the cluster's controllers ---


def run_pod(
    cluster: FakeCluster,
    name: str,
    *,
    deployment: str = NAME,
    ip: str = "10.1.0.7",
    ready: bool = True,
    server: dict[str, Any] | None = None,
    server_last: dict[str, Any] | None = None,
    restarts: int = 0,
    init: dict[str, Any] | None = None,
    scheduled: bool = True,
    scheduling_message: str = "",
    evicted: bool = False,
) -> dict[str, Any]:
    """A pod made from the Deployment's template, with the status a kubelet would write."""
    stored = cluster.get("Deployment", deployment)
    assert stored is not None
    template = copy.deepcopy(stored["spec"]["template"])
    conditions = [{"type": "PodScheduled", "status": "True" if scheduled else "False"}]
    if not scheduled:
        conditions[0].update(reason="Unschedulable", message=scheduling_message)
    else:
        conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    status: dict[str, Any] = {"phase": "Running" if scheduled else "Pending", "conditions": conditions}
    if scheduled:
        status.update(podIP=ip, startTime="2025-01-01T12:00:00Z")
        status["initContainerStatuses"] = [
            {
                "name": "storage-initializer",
                "ready": init is None,
                "restartCount": 0,
                "image": "python:3.11-slim",
                "imageID": "",
                "state": init or {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ]
        if init is None:
            status["containerStatuses"] = [
                {
                    "name": "inference-server",
                    "ready": ready,
                    "restartCount": restarts,
                    "image": "ghcr.io/studio-ml/runtime:0.1.0",
                    "imageID": "",
                    "state": server or {"running": {"startedAt": "2025-01-01T12:00:05Z"}},
                    "lastState": server_last or {},
                }
            ]
        else:
            status["phase"] = "Pending"
    if evicted:
        status.update(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "studio", **template["metadata"]},
        "spec": template["spec"],
        "status": status,
    }
    cluster.put(pod)
    return pod


def event(
    cluster: FakeCluster, pod: str, reason: str, message: str, *, type: str = "Warning", container: str = "", count=1
) -> None:
    """An event about a pod, as the kubelet or the scheduler records it."""
    field_path = f"spec.containers{{{container}}}" if container else ""
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod}.{reason.lower()}", "namespace": "studio"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "studio", "fieldPath": field_path},
            "reason": reason,
            "message": message,
            "type": type,
            "count": count,
            "lastTimestamp": "2025-01-01T12:01:00Z",
        }
    )


def writes(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(call.method, call.kind) for call in cluster.calls if call.method not in ("GET",)]


# --- apply ---


def test_apply_creates_every_object_with_server_side_apply(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    observed = backend.apply(make_spec())

    patches = [call for call in cluster.calls if call.method == "PATCH"]
    assert [call.kind for call in patches] == [
        "Secret",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    assert all(call.content_type.startswith("application/apply-patch+yaml") for call in patches)
    assert all(call.params == {"fieldManager": "studio", "force": "true"} for call in patches)
    assert not [call for call in cluster.calls if call.method in ("PUT", "POST")]
    expected = {m["kind"]: m for m in build_manifests(make_spec(), OPTIONS)}
    stored = cluster.get("Deployment", NAME)
    assert stored["spec"] == expected["Deployment"]["spec"]
    assert cluster.get("Service", NAME)["spec"]["selector"] == {"studio.ml/deployment-uid": make_spec().uid}
    assert cluster.get("Secret", NAME)["data"] == expected["Secret"]["data"]
    assert observed.instances == () and observed.failed_reason == ""


def test_apply_twice_changes_nothing_and_never_replaces(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    first = cluster.get("Deployment", NAME)
    cluster.clear_calls()

    backend.apply(make_spec())

    second = cluster.get("Deployment", NAME)
    assert second["spec"] == first["spec"]
    assert second["metadata"]["generation"] == first["metadata"]["generation"]
    assert {method for method, _ in writes(cluster)} <= {"PATCH", "DELETE"}


def test_apply_scales_by_patching_replicas(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    backend.apply(make_spec(instance_count=4, generation=4))

    stored = cluster.get("Deployment", NAME)
    assert stored["spec"]["replicas"] == 4
    assert stored["metadata"]["annotations"]["studio.ml/generation"] == "4"


def test_switching_to_autoscaling_hands_the_replicas_to_the_hpa_without_dropping_to_one(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    """Finding 7: omitting `replicas` under server-side apply removed the field; the API server defaulted it to 1."""
    spec = make_spec(instance_count=3)
    backend.apply(spec)
    autoscaled = replace(spec, scale_settings=autoscaled_spec().scale_settings, generation=4)

    backend.apply(autoscaled)

    hpa = cluster.get("HorizontalPodAutoscaler", NAME)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5)
    stored = cluster.get("Deployment", NAME)
    assert stored["spec"]["replicas"] == 3
    managers = {entry["manager"]: entry["fieldsV1"] for entry in stored["metadata"]["managedFields"]}
    assert "f:replicas" not in managers["studio"]["f:spec"]

    # The HPA scales; the studio's next applies leave its count alone.
    cluster.update("Deployment", NAME, {"spec": {"replicas": 5}}, manager="kube-controller-manager")
    backend.apply(autoscaled)
    assert cluster.get("Deployment", NAME)["spec"]["replicas"] == 5

    backend.apply(replace(spec, generation=5))
    cluster.collect_garbage()  # the HPA has no dependants: the garbage collector lets it go at once
    assert cluster.get("HorizontalPodAutoscaler", NAME) is None
    assert cluster.get("Deployment", NAME)["spec"]["replicas"] == 3


def test_the_fake_defaults_replicas_to_one_when_the_only_manager_drops_it(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    """What the hand-over guards against, shown on the fake as on a real API server."""
    manifest = next(m for m in build_manifests(make_spec(instance_count=3), OPTIONS) if m["kind"] == "Deployment")
    backend.cluster.apply(manifest)
    del manifest["spec"]["replicas"]

    backend.cluster.apply(manifest)

    assert cluster.get("Deployment", NAME)["spec"]["replicas"] == 1


def test_a_body_the_api_server_rejects_is_a_failed_deployment_with_its_message(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    environment = EnvironmentSpec(
        name="e", version="1", image=" python:3.11", conda_file=None, pip_requirements="", spec_hash="x"
    )
    observed = backend.apply(make_spec(environment=environment))

    assert observed.failed_reason == "InvalidDeploymentSpec"
    assert "must not have leading or trailing whitespace" in observed.failed_message
    assert cluster.get("Deployment", NAME) is None


def test_a_spec_the_builders_reject_fails_without_calling_the_cluster(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    spec = make_spec(scale_settings={"type": "target_utilization", "min_instances": 3, "max_instances": 1})

    observed = backend.apply(spec)

    assert observed.failed_reason == "InvalidDeploymentSpec"
    assert "scale_settings.min_instances (3) must not exceed" in observed.failed_message
    assert cluster.calls == []


def test_a_missing_namespace_is_named_in_the_failure(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.namespace = "ml-prod"

    observed = backend.apply(make_spec())

    assert observed.failed_reason == "NamespaceNotFound"
    assert "namespace 'ml-prod' does not exist" in observed.failed_message


@pytest.mark.parametrize(("status", "message"), [(409, "the object has been modified"), (500, "etcdserver: timeout")])
def test_a_conflict_or_server_error_is_transient(
    backend: KubernetesBackend, cluster: FakeCluster, status: int, message: str
) -> None:
    cluster.fail_next(status, message, method="PATCH", kind="Deployment")

    with pytest.raises(KubernetesUnavailable, match=message):
        backend.apply(make_spec())

    backend.apply(make_spec())  # the retry goes through
    assert cluster.get("Deployment", NAME) is not None


def test_the_fake_answers_409_to_a_create_of_an_existing_object(cluster: FakeCluster, backend: Any) -> None:
    """The fake behaves like an API server where the backend does not go (it never POSTs)."""

    backend.apply(make_spec())
    api = client.CoreV1Api(backend.api_client)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": NAME}, "data": {}}
    with pytest.raises(client.ApiException) as error:
        api.create_namespaced_secret("studio", secret)
    assert error.value.status == 409


def test_an_unreachable_cluster_is_transient(backend: KubernetesBackend, settings: Any, tmp_path: Any) -> None:
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\ncurrent-context: x\n"
    )
    settings.STUDIO_KUBECONFIG = str(dead)
    settings.STUDIO_KUBE_CONTEXT = ""

    with pytest.raises(KubernetesUnavailable, match="unreachable"):
        KubernetesBackend(options=lambda spec, previous: OPTIONS).observe(make_spec())


def test_the_configured_context_is_used(cluster: FakeCluster, settings: Any, tmp_path: Any) -> None:
    settings.STUDIO_KUBE_NAMESPACE = "studio"
    settings.STUDIO_KUBECONFIG = str(cluster.write_kubeconfig(tmp_path / "kc", context="lab", extra_context="prod"))
    settings.STUDIO_KUBE_CONTEXT = "lab"

    KubernetesBackend(options=lambda spec, previous: OPTIONS).apply(make_spec())

    assert cluster.get("Deployment", NAME) is not None


def test_apply_waits_while_the_previous_deployment_is_still_being_deleted(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    backend.delete(make_spec())

    with pytest.raises(KubernetesUnavailable, match="still being deleted"):
        backend.apply(make_spec())

    cluster.collect_garbage()
    backend.apply(make_spec())
    assert cluster.get("Deployment", NAME)["metadata"].get("deletionTimestamp") is None


# --- observe ---


def test_ready_pods_are_ready_instances_with_their_pod_address(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-7d9f-abcde", ip="10.1.0.7")
    run_pod(cluster, f"{NAME}-7d9f-fghij", ip="10.1.0.8", ready=False)

    observed = backend.observe(make_spec())

    assert [(i.name, i.ready, i.state) for i in observed.instances] == [
        (f"{NAME}-7d9f-abcde", True, "Ready"),
        (f"{NAME}-7d9f-fghij", False, "Starting"),
    ]
    assert observed.ready_count == 1
    assert observed.instances[0].address == "http://10.1.0.7:5001"
    assert observed.instances[0].generation == 3
    assert observed.failed_reason == ""
    pods_list = [call for call in cluster.calls if call.path.endswith("/pods")][-1]
    assert pods_list.params["labelSelector"] == f"studio.ml/deployment-uid={make_spec().uid}"


def test_pods_of_other_deployments_are_not_instances(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    other = autoscaled_spec(uid="11111111-2222-4333-8444-555555555555")
    backend.apply(other)
    run_pod(cluster, f"{NAME}-a")
    run_pod(cluster, f"{object_name(other)}-a", deployment=object_name(other))

    assert [i.name for i in backend.observe(make_spec()).instances] == [f"{NAME}-a"]


def test_pods_of_an_older_template_are_marked_stale(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-old")
    backend.apply(make_spec(environment_variables={"WORKER_COUNT": "4"}, generation=4))
    run_pod(cluster, f"{NAME}-new")

    observed = backend.observe(make_spec(environment_variables={"WORKER_COUNT": "4"}, generation=4))

    assert {i.name: i.generation for i in observed.instances} == {f"{NAME}-new": 4, f"{NAME}-old": 0}


def test_crash_loop_fails_with_exit_code_output_and_the_backoff_event(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    pod = f"{NAME}-crash"
    run_pod(
        cluster,
        pod,
        ready=False,
        restarts=4,
        server={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        server_last={
            "terminated": {"exitCode": 1, "reason": "Error", "message": "NameError: name 'modle' is not defined"}
        },
    )
    event(
        cluster,
        pod,
        "BackOff",
        "Back-off restarting failed container inference-server",
        container="inference-server",
        count=5,
    )

    observed = backend.observe(make_spec())

    assert observed.failed_reason == "DeploymentCrashLoopBackOff"
    assert f"inference-server in pod {pod}: keeps crashing (exit code 1, 4 restarts)" in observed.failed_message
    assert "NameError: name 'modle' is not defined" in observed.failed_message
    assert observed.instances[0].state == "CrashLoopBackOff"
    assert observed.instances[0].restarts == 4
    (copied,) = observed.events
    assert (copied.reason, copied.type, copied.instance, copied.container, copied.count) == (
        "BackOff",
        "Warning",
        pod,
        "inference-server",
        5,
    )
    assert copied.message == "Back-off restarting failed container inference-server"


def test_image_pull_backoff_fails_with_azures_reason(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    message = 'Back-off pulling image "ghcr.io/studio-ml/runtime:0.1.0"'
    run_pod(
        cluster, f"{NAME}-pull", ready=False, server={"waiting": {"reason": "ImagePullBackOff", "message": message}}
    )

    observed = backend.observe(make_spec())

    assert observed.failed_reason == "ImagePullLoopBackOff"
    assert message in observed.failed_message


def test_an_unschedulable_pod_is_pending_with_the_autoscalers_word_until_the_progress_deadline(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    """Finding 5: an Unschedulable pod failed the deployment at once, even while the autoscaler added a node."""
    backend.apply(make_spec())
    pod = f"{NAME}-pending"
    run_pod(cluster, pod, scheduled=False, scheduling_message="0/3 nodes are available")
    event(cluster, pod, "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")
    event(cluster, pod, "TriggeredScaleUp", "pod triggered scale-up: [{pool-a 3->4 (max: 10)}]", type="Normal")
    cluster.run_deployment_controller(NAME)

    waiting = backend.observe(make_spec())

    assert waiting.failed_reason == ""
    assert waiting.instances[0].state == "Pending"
    assert waiting.instances[0].message == (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "(cluster autoscaler: TriggeredScaleUp: pod triggered scale-up: [{pool-a 3->4 (max: 10)}])"
    )

    cluster.run_deployment_controller(NAME, deadline_exceeded=True)
    failed = backend.observe(make_spec())

    assert failed.failed_reason == "PodUnschedulable"
    assert failed.failed_message.startswith(
        f"pod {pod} cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu."
    )


def test_an_out_of_memory_kill_fails_naming_the_limit(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    run_pod(
        cluster,
        f"{NAME}-oom",
        ready=False,
        restarts=1,
        server={"running": {"startedAt": "2025-01-01T12:02:00Z"}},
        server_last={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    )

    observed = backend.observe(make_spec())

    assert observed.failed_reason == "PodOutOfMemory"
    assert "ran out of memory (OOMKilled) at its limit of 7Gi" in observed.failed_message


def test_a_failed_storage_initializer_fails_with_its_last_output(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    output = "download of model failed: HTTP Error 403: Forbidden"
    run_pod(
        cluster, f"{NAME}-init", ready=False, init={"terminated": {"exitCode": 1, "reason": "Error", "message": output}}
    )

    observed = backend.observe(make_spec())

    assert observed.failed_reason == "StorageInitializerFailed"
    assert f"storage-initializer in pod {NAME}-init: exited with code 1: {output}" in observed.failed_message


def test_a_quota_that_blocks_pod_creation_is_out_of_quota(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    message = 'pods "my-endpoint-blue-x" is forbidden: exceeded quota: compute, requested: cpu=2, limited: cpu=4'
    cluster.set_status(
        "Deployment",
        NAME,
        {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message}]},
    )

    observed = backend.observe(make_spec())

    assert observed.failed_reason == "OutOfQuota"
    assert "exceeded quota" in observed.failed_message


def test_observe_of_a_deployment_never_applied_is_empty(backend: KubernetesBackend) -> None:
    observed = backend.observe(make_spec())
    assert observed.instances == () and observed.failed_reason == "" and observed.events == ()


# --- logs ---


def test_logs_tail_the_inference_server_of_every_pod(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    for suffix in ("a", "b"):
        run_pod(cluster, f"{NAME}-{suffix}")
        cluster.set_log(f"{NAME}-{suffix}", "inference-server", "".join(f"{suffix} line {n}\n" for n in range(10)))

    text = backend.logs(make_spec(), container="inference-server", lines=2)

    assert text == (
        f"==> {NAME}-a/inference-server <==\na line 8\na line 9\n"
        f"==> {NAME}-b/inference-server <==\nb line 8\nb line 9\n"
    )
    log_calls = [call for call in cluster.calls if call.path.endswith("/log")]
    assert all(call.params["tailLines"] == "2" and call.params["container"] == "inference-server" for call in log_calls)


def test_logs_of_a_crashed_container_come_from_its_previous_run(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    pod = f"{NAME}-crash"
    run_pod(
        cluster,
        pod,
        ready=False,
        restarts=3,
        server={"waiting": {"reason": "CrashLoopBackOff"}},
        server_last={"terminated": {"exitCode": 1}},
    )
    cluster.set_log(pod, "inference-server", "Traceback (most recent call last):\nNameError: modle\n", previous=True)

    text = backend.logs(make_spec(), container="inference-server", lines=100, instance=pod)

    assert text == "Traceback (most recent call last):\nNameError: modle\n"
    assert [call.params.get("previous") for call in cluster.calls if call.path.endswith("/log")] == ["true"]


def test_logs_of_the_storage_initializer(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-a")
    cluster.set_log(f"{NAME}-a", "storage-initializer", "downloading model\nmodel ready: 1 files\n")

    text = backend.logs(make_spec(), container="storage-initializer", lines=100)

    assert text == "downloading model\nmodel ready: 1 files\n"


def test_logs_of_a_container_not_started_yet_say_why(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-a", ready=False, init={"running": {}})

    text = backend.logs(make_spec(), container="inference-server", lines=100)

    assert text.startswith("(no log: ") and "waiting to start" in text


def test_logs_of_an_unknown_instance_are_not_found(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    with pytest.raises(NotFound, match="instance 'nope' is not a pod of deployment 'blue'"):
        backend.logs(make_spec(), container="inference-server", lines=10, instance="nope")


# --- delete ---


def test_delete_uses_foreground_propagation_and_uid_preconditions(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    spec = autoscaled_spec()
    name = GREEN
    backend.apply(spec)
    uids = {kind: cluster.get(kind, name)["metadata"]["uid"] for kind in ("Deployment", "Secret")}
    run_pod(cluster, f"{name}-a", deployment=name)
    cluster.clear_calls()

    backend.delete(spec)

    deletes = [call for call in cluster.calls if call.method == "DELETE"]
    assert [call.kind for call in deletes] == [
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "Deployment",
        "NetworkPolicy",
        "Secret",
    ]
    assert all(call.body["propagationPolicy"] == "Foreground" for call in deletes)
    assert deletes[3].body["preconditions"] == {"uid": uids["Deployment"]}
    assert deletes[5].body["preconditions"] == {"uid": uids["Secret"]}
    # Foreground: the Deployment waits for its pods, as on a real cluster.
    assert cluster.get("Deployment", name)["metadata"]["finalizers"] == ["foregroundDeletion"]
    cluster.collect_garbage()
    assert cluster.names("Deployment") == cluster.names("Pod") == cluster.names("Service") == []
    assert cluster.names("Secret") == cluster.names("HorizontalPodAutoscaler") == []


def test_delete_twice_is_harmless(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    backend.delete(make_spec())
    cluster.collect_garbage()

    backend.delete(make_spec())

    assert cluster.names("Deployment") == []


# --- finding 1: drift is repaired ---


def test_a_deployment_deleted_by_hand_is_created_again(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    cluster.delete_now("Deployment", NAME)

    backend.supervise(make_spec())

    assert cluster.get("Deployment", NAME)["spec"]["replicas"] == 2


def test_a_deployment_scaled_by_hand_is_scaled_back(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    cluster.update("Deployment", NAME, {"spec": {"replicas": 7}}, manager="kubectl")

    backend.supervise(make_spec())

    assert cluster.get("Deployment", NAME)["spec"]["replicas"] == 2


def test_objects_the_pass_does_not_read_are_repaired_by_the_periodic_full_apply(
    backend: KubernetesBackend, cluster: FakeCluster, settings: Any
) -> None:
    backend.apply(make_spec())
    cluster.delete_now("Service", NAME)
    backend.supervise(make_spec())
    assert cluster.get("Service", NAME) is None  # within the resync interval only the Deployment is checked

    settings.STUDIO_KUBE_RESYNC_S = 0
    backend.supervise(make_spec())

    assert cluster.get("Service", NAME) is not None


def test_supervising_an_unchanged_deployment_writes_nothing(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    cluster.clear_calls()

    backend.supervise(make_spec())

    assert [call.method for call in cluster.calls if call.method != "GET"] == []


# --- finding 2: a change of code rolls the pods ---


def test_changing_only_the_code_changes_the_pod_template(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    before = cluster.get("Deployment", NAME)["spec"]["template"]
    run_pod(cluster, f"{NAME}-old")
    new_code = make_spec(code_root="/srv/studio/media/code/ffff0000ffff0000", code_digest="ffff0000ffff0000")

    backend.apply(replace(new_code, generation=4))

    after = cluster.get("Deployment", NAME)["spec"]["template"]
    assert after != before
    assert json.loads(after["metadata"]["annotations"]["studio.ml/digests"])["code"] == "ffff0000ffff0000"
    observed = backend.observe(replace(new_code, generation=4))
    assert [(i.name, i.generation) for i in observed.instances] == [(f"{NAME}-old", 0)]
    assert observed.rollout_complete is False


# --- finding 5: status from the objects that decide it ---


def test_an_old_out_of_memory_kill_of_a_ready_container_is_history(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    run_pod(
        cluster,
        f"{NAME}-a",
        restarts=1,
        server_last={"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2025-01-01T08:00:00Z"}},
    )
    cluster.run_deployment_controller(NAME)

    observed = backend.observe(make_spec())

    assert observed.failed_reason == ""
    assert observed.instances[0].ready


def test_pods_of_the_previous_template_do_not_fail_the_update_that_fixed_them(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    run_pod(
        cluster,
        f"{NAME}-old",
        ready=False,
        restarts=6,
        server={"waiting": {"reason": "CrashLoopBackOff"}},
        server_last={"terminated": {"exitCode": 1}},
    )
    fixed = make_spec(environment_variables={"WORKER_COUNT": "1"}, generation=4)
    backend.apply(fixed)
    run_pod(cluster, f"{NAME}-new", ip="10.1.0.9")

    observed = backend.observe(fixed)

    assert observed.failed_reason == ""
    assert {i.name: i.state for i in observed.instances} == {f"{NAME}-new": "Ready", f"{NAME}-old": "CrashLoopBackOff"}


@pytest.mark.parametrize(
    ("status", "complete"),
    [
        ({"observed": False}, False),  # the controller has not seen the new spec yet
        ({"observed": True}, True),
    ],
)
def test_the_rollout_is_complete_only_once_the_controller_saw_the_spec(
    backend: KubernetesBackend, cluster: FakeCluster, status: dict[str, bool], complete: bool
) -> None:
    spec = make_spec(instance_count=1)
    backend.apply(spec)
    run_pod(cluster, f"{NAME}-a")
    cluster.run_deployment_controller(NAME, observed=status["observed"])

    assert backend.observe(spec).rollout_complete is complete


def test_with_an_hpa_the_rollout_waits_for_every_replica_the_hpa_wants(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    """Finding 5: "Succeeded" was reported while most replicas of an HPA-scaled deployment ran the old version."""
    spec = autoscaled_spec()
    backend.apply(spec)
    cluster.update("Deployment", GREEN, {"spec": {"replicas": 3}}, manager="kube-controller-manager")
    run_pod(cluster, f"{GREEN}-a", deployment=GREEN)
    cluster.run_deployment_controller(GREEN)

    observed = backend.observe(spec)

    assert observed.desired_instances == 3
    assert observed.rollout_complete is False


def test_events_k8s_io_series_are_counted_once(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    pod = f"{NAME}-a"
    run_pod(cluster, pod, ready=False)
    cluster.put(
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{pod}.unhealthy", "namespace": "studio"},
            "eventTime": "2025-01-01T12:00:10.000000Z",
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "action": "Probe",
            "regarding": {
                "kind": "Pod",
                "name": pod,
                "namespace": "studio",
                "fieldPath": "spec.containers{inference-server}",
            },
            "reason": "Unhealthy",
            "note": "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "type": "Warning",
            "series": {"count": 12, "lastObservedTime": "2025-01-01T12:03:10.000000Z"},
        }
    )

    (found,) = backend.observe(make_spec()).events

    assert (found.reason, found.count, found.container) == ("Unhealthy", 12, "inference-server")
    assert found.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    assert found.at is not None and found.at.minute == 3


def test_a_role_without_a_permission_is_kubernetes_unaccessible_not_a_retry(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    stop = cluster.fail_always(
        403, 'pods is forbidden: User "system:serviceaccount:studio:studio" cannot list', kind="Pod"
    )
    try:
        observed = backend.observe(make_spec())
    finally:
        stop()

    assert observed.failed_reason == "KubernetesUnaccessible"
    assert "cannot list" in observed.failed_message
    assert backend.observe(make_spec()).failed_reason == ""


def test_an_evicted_pod_is_a_failed_instance_not_a_failed_deployment(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-a", evicted=True)

    observed = backend.observe(make_spec())

    assert observed.failed_reason == ""
    assert observed.instances[0].state == "Failed"


# --- finding 6: ownership ---


def test_names_carry_the_uid_so_no_deployment_takes_anothers_or_the_studios_name() -> None:
    first = object_name(make_spec(endpoint_name="abc-def", name="ghi", uid="11111111-1111-4111-8111-111111111111"))
    second = object_name(make_spec(endpoint_name="abc", name="def-ghi", uid="22222222-2222-4222-8222-222222222222"))
    assert first != second
    assert object_name(make_spec(endpoint_name="studio", name="web")) != "studio-web"
    assert object_name(make_spec(endpoint_name="studio", name="secrets")) != "studio-secrets"


def test_an_object_that_is_not_the_deployments_own_is_never_changed_or_deleted(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    foreign = next(
        m
        for m in build_manifests(make_spec(uid="99999999-9999-4999-8999-999999999999"), OPTIONS)
        if m["kind"] == "Secret"
    )
    foreign["metadata"]["name"] = NAME  # someone's object that happens to have this deployment's name
    cluster.put(foreign)
    before = cluster.get("Secret", NAME)

    observed = backend.apply(make_spec())
    backend.delete(make_spec())

    assert observed.failed_reason == "InvalidDeploymentSpec"
    assert f"Secret studio/{NAME} exists and is not this deployment's" in observed.failed_message
    assert cluster.get("Secret", NAME) == before


def test_a_patch_names_the_live_objects_uid_so_a_replaced_object_is_not_overwritten(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    backend.apply(make_spec())
    uid = cluster.get("Deployment", NAME)["metadata"]["uid"]
    cluster.clear_calls()

    backend.apply(make_spec())

    patch = next(call for call in cluster.calls if call.method == "PATCH" and call.kind == "Deployment")
    sent = patch.body if isinstance(patch.body, dict) else yaml.safe_load(patch.body)
    assert sent["metadata"]["uid"] == uid


# --- finding 8: requests per pass ---


def test_an_observation_makes_three_requests_whatever_the_number_of_pods(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    spec = make_spec(instance_count=5)
    backend.apply(spec)
    for index in range(5):
        run_pod(cluster, f"{NAME}-{index}", ip=f"10.1.0.{index + 10}")
    cluster.clear_calls()

    backend.observe(spec)

    calls = cluster.calls
    assert [(call.method, call.kind) for call in calls] == [
        ("GET", "Deployment"),
        ("GET", "Pod"),
        ("GET", "events.k8s.io/Event"),
    ]
    assert all(call.params.get("resourceVersion") == "0" for call in calls[1:])


def test_one_api_client_per_process_and_a_new_one_after_fork(backend: KubernetesBackend) -> None:
    first = shared_api_client()
    assert shared_api_client() is first
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.write(write, b"new" if shared_api_client() is not first else b"shared")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(child, 0)
    os.close(read)
    assert answer == b"new"


# --- finding 9: pod addresses ---


def test_an_ipv6_pod_address_is_bracketed(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    backend.apply(make_spec())
    run_pod(cluster, f"{NAME}-a", ip="fd00:10:1::7")

    assert backend.observe(make_spec()).instances[0].address == "http://[fd00:10:1::7]:5001"


# --- the fake API server behaves like a real one where the backend relies on it ---


def test_the_fake_refuses_a_change_of_a_deployments_selector(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    manifest = next(m for m in build_manifests(make_spec(), OPTIONS) if m["kind"] == "Deployment")
    backend.cluster.apply(manifest)
    manifest["spec"]["selector"]["matchLabels"]["extra"] = "x"
    manifest["spec"]["template"]["metadata"]["labels"]["extra"] = "x"

    with pytest.raises(client.ApiException) as error:
        backend.cluster.apply(manifest)

    assert error.value.status == 422
    assert "spec.selector" in error.value.body and "field is immutable" in error.value.body


def test_the_fake_reports_a_conflict_with_another_field_manager_unless_forced(
    backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    manifest = next(m for m in build_manifests(make_spec(), OPTIONS) if m["kind"] == "Deployment")
    backend.cluster.apply(manifest)
    cluster.update("Deployment", NAME, {"spec": {"replicas": 9}}, manager="kubectl")

    with pytest.raises(KubernetesUnavailable, match='conflict with "kubectl": .spec.replicas'):
        backend.cluster.apply(manifest, force=False)
    backend.cluster.apply(manifest)

    stored = cluster.get("Deployment", NAME)
    assert stored["spec"]["replicas"] == 2
    managers = {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    assert "studio" in managers
