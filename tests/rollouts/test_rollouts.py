"""Rollouts through the API and the evaluation beat runs, judged on metrics pushed as the gateway pushes them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.endpoints import services as endpoint_services
from apps.endpoints.models import DeploymentEvent, Endpoint
from apps.rollouts import services
from apps.rollouts.models import Rollout
from tests.monitoring.gateway import Request, aggregate, clear, push
from tests.rollouts.conftest import traffic

pytestmark = pytest.mark.django_db
URL = "/api/v1/online-endpoints/ep1/rollout"


@pytest.fixture(autouse=True)
def _queues() -> Any:
    clear()
    yield
    clear()


def answers(deployment: str, count: int, *, failing: int = 0, latency_ms: float = 20, at_s: float = 0) -> None:
    """`count` finished live requests of a deployment, the first `failing` of them 500s, as the gateway pushes them."""
    now = time.time() + at_s
    push(
        aggregate(
            Request(ts=now, deployment=deployment, latency_ms=latency_ms, status=500 if i < failing else 200)
            for i in range(count)
        )
    )


def start(api: Any, **doc: Any) -> Any:
    return api.post(
        URL,
        {"deployment": "green", "steps": [20, 100], "step_duration": "10s", "min_requests": 50, **doc},
        format="json",
    )


def evaluate(*, after_s: float = 0) -> Rollout:
    services.rollouts_evaluate(now=timezone.now() + timedelta(seconds=after_s))
    return Rollout.objects.get()


def reasons() -> list[str]:
    return [e.message for e in DeploymentEvent.objects.filter(reason__startswith="Rollout").order_by("id")]


def test_start_moves_the_first_step_and_shows_it(api: Any, ep: Endpoint) -> None:
    response = start(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["state"], body["position"], body["percent"]) == ("Running", "step 1 (20 %)", 20)
    assert traffic() == ({"blue": 80, "green": 20}, {})
    assert reasons() == [
        "rollout of green started by alice: steps 20, 100 %; baseline blue=100",
        "step 1 (20 %): blue=80 green=20",
    ]
    shown = api.get(URL).json()
    assert shown["baseline"] == {"blue": 100, "green": 0}
    assert [e["reason"] for e in shown["events"]] == ["RolloutStarted", "RolloutStep"]


def test_a_failing_target_is_rolled_back_at_the_first_step_naming_its_error_rate(api: Any, ep: Endpoint) -> None:
    start(api)
    answers("green", 30, failing=10)
    assert evaluate().state == "Running"  # 30 of 50 answers: not judged yet
    answers("green", 30, failing=10)
    answers("blue", 200)
    rollout = evaluate()
    assert rollout.state == "RolledBack"
    assert rollout.message == "step 1 (20 %): error rate 33.3 % > 1 % over 60 answers: rolled back to blue=100"
    assert traffic() == ({"blue": 100, "green": 0}, {})
    assert api.get(URL).json()["events"][-1]["message"] == rollout.message


def test_a_healthy_target_steps_up_and_succeeds_at_100(api: Any, ep: Endpoint) -> None:
    start(api)
    answers("green", 60)
    answers("blue", 240)
    assert evaluate(after_s=5).state == "Running"  # healthy, but 10 s at the step have not passed
    rollout = evaluate(after_s=5 + 10)
    assert (rollout.step, traffic()[0]) == (1, {"blue": 0, "green": 100})
    answers("green", 60, at_s=20)
    rollout = evaluate(after_s=30)
    rollout = evaluate(after_s=45)
    assert rollout.state == "Succeeded"
    assert traffic() == ({"blue": 0, "green": 100}, {})
    assert reasons()[-1] == (
        "step 2 (100 %) passed: error rate 0.0 % ≤ 1 % over 60 answers: green takes all live traffic"
    )


def test_the_traffic_history_names_who_moved_each_step(api: Any, ep: Endpoint, admin_client: Any) -> None:
    start(api)
    answers("green", 60)
    answers("blue", 240)
    evaluate(after_s=15)
    page = admin_client.get("/endpoints/ep1/traffic/").content.decode()
    rows = page.split('<table id="traffic-history">')[1].split("</table>")[0].split("<tr id=")[1:]
    who = [row.split("<td>")[2].split("</td>")[0] for row in rows]  # newest first
    assert who[:2] == ["rollout", "alice"]  # beat's step, then the start by the user who asked


def test_at_100_the_baselines_last_answers_are_not_a_p99_baseline(api: Any, ep: Endpoint) -> None:
    """At 100 % the baseline serves nothing: its answers still in the 10 s interval the step began in (fast ones
    here) must not make a healthy target's p99 look 4 times slower."""
    start(api)
    answers("green", 60)
    answers("blue", 240)
    rollout = evaluate(after_s=15)
    assert (rollout.step, traffic()[0]) == (1, {"blue": 0, "green": 100})
    answers("blue", 240, latency_ms=5, at_s=15)  # in flight when the split moved
    answers("green", 60, at_s=20)
    evaluate(after_s=30)
    rollout = evaluate(after_s=45)
    assert rollout.state == "Succeeded", rollout.message


def test_the_clock_does_not_count_time_without_evaluations(api: Any, ep: Endpoint, settings: Any) -> None:
    settings.STUDIO_ROLLOUT_GATE_INTERVAL_MS = 1000
    start(api)
    answers("green", 60)
    rollout = evaluate(after_s=3600)  # the studio was down for an hour: at most 3 intervals count
    assert rollout.state == "Running" and rollout.step == 0
    assert rollout.step_elapsed_s == 3.0


def test_a_manual_traffic_change_is_refused_while_running_and_force_aborts(api: Any, ep: Endpoint) -> None:
    start(api)
    refused = api.patch("/api/v1/online-endpoints/ep1", {"traffic": {"blue": 50, "green": 50}}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        "online endpoint 'ep1' has a rollout of 'green' in progress (Running, step 1 (20 %))"
    )
    assert "--force" in refused.json()["error"]["message"]
    forced = api.patch("/api/v1/online-endpoints/ep1?force=true", {"traffic": {"blue": 50, "green": 50}}, format="json")
    assert forced.status_code == 200
    assert traffic()[0] == {"blue": 50, "green": 50}
    assert Rollout.objects.get().state == "Aborted"
    assert reasons()[-1] == "step 1 (20 %): aborted: traffic set to blue=50 green=50 by alice with --force"


def test_pause_resume_promote_and_one_rollout_at_a_time(api: Any, ep: Endpoint) -> None:
    start(api)
    again = start(api)
    assert again.status_code == 409
    assert "already has a rollout of 'green' (Running, step 1 (20 %))" in again.json()["error"]["message"]
    assert api.post(URL + "/pause").json()["state"] == "Paused"
    answers("green", 60, failing=60)
    assert evaluate().state == "Paused"  # a paused rollout is not judged
    assert api.post(URL + "/resume").json()["state"] == "Running"
    promoted = api.post(URL + "/promote").json()
    assert (promoted["state"], promoted["traffic"]) == ("Succeeded", {"blue": 0, "green": 100})
    late = api.post(URL + "/abort")
    assert late.status_code == 409
    assert late.json()["error"]["message"] == (
        "the rollout of 'green' on 'ep1' is Succeeded; only a Running or Paused rollout can abort"
    )


def test_abort_puts_the_baseline_back(api: Any, ep: Endpoint) -> None:
    endpoint_services.traffic_set(endpoint=ep, traffic={"blue": 100, "green": 0})
    start(api)
    aborted = api.post(URL + "/abort").json()
    assert aborted["state"] == "Aborted"
    assert traffic() == ({"blue": 100, "green": 0}, {})


def test_start_refuses_a_target_that_is_not_there_or_no_baseline(api: Any, ep: Endpoint) -> None:
    missing = start(api, deployment="purple")
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == (
        "deployment: 'purple' is not a deployment of online endpoint 'ep1' (it has: blue, green)"
    )
    endpoint_services.traffic_set(endpoint=ep, traffic={"blue": 0, "green": 100})
    lonely = start(api)
    assert lonely.status_code == 400
    assert (
        "has no baseline: no deployment other than 'green' takes live traffic (green=100)"
        in lonely.json()["error"]["message"]
    )
    assert api.get("/api/v1/online-endpoints/ep1/rollout").status_code == 404
    bad = api.post(URL + "/explode")
    assert bad.status_code == 404
