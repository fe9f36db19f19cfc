"""The rollout's decisions as pure functions: no database, no clock."""

from __future__ import annotations

from typing import Any

from apps.rollouts.gates import Measures, decide, split_at
from apps.rollouts.spec import rollout_spec


def spec(**overrides: Any) -> dict[str, Any]:
    return rollout_spec({"deployment": "green", "steps": [20, 100], "step_duration": "60s", **overrides})


def test_split_at_keeps_the_baselines_proportions_and_sums_to_100() -> None:
    assert split_at({"blue": 100, "green": 0}, "green", 20) == {"blue": 80, "green": 20}
    assert split_at({"a": 50, "b": 50, "green": 0}, "green", 25) == {"a": 38, "b": 37, "green": 25}
    assert split_at({"a": 70, "b": 30, "green": 0}, "green", 100) == {"a": 0, "b": 0, "green": 100}
    assert sum(split_at({"a": 33, "b": 33, "c": 34, "green": 0}, "green", 10).values()) == 100


def test_a_step_waits_for_min_requests_before_judging_even_a_bad_error_rate() -> None:
    decision = decide(
        spec(), phase="live", step=0, elapsed_s=120, measures=Measures(target_requests=99, target_errors=50)
    )
    assert decision.action == "wait"
    assert decision.message == "step 1 (20 %): 99 of 100 answers from the target so far"
    assert [gate.ok for gate in decision.gates] == [None, None]


def test_an_error_rate_over_the_gate_fails_the_step_naming_the_figures() -> None:
    decision = decide(
        spec(), phase="live", step=0, elapsed_s=3, measures=Measures(target_requests=118, target_errors=40)
    )
    assert decision.action == "fail"
    assert decision.message == "step 1 (20 %): error rate 33.9 % > 1 % over 118 answers"
    assert decision.gates[0].ok is False


def test_a_slow_target_fails_on_the_p99_ratio() -> None:
    measures = Measures(target_requests=200, target_p99_ms=300, baseline_requests=800, baseline_p99_ms=100)
    decision = decide(spec(), phase="live", step=0, elapsed_s=3, measures=measures)
    assert decision.action == "fail"
    assert decision.message == ("step 1 (20 %): p99 ratio 3.00 > 1.5 (target 300 ms, baseline 100 ms) over 200 answers")


def test_a_healthy_step_waits_out_its_duration_then_advances_and_the_last_succeeds() -> None:
    measures = Measures(
        target_requests=150, target_errors=1, target_p99_ms=50, baseline_requests=600, baseline_p99_ms=45
    )
    early = decide(spec(), phase="live", step=0, elapsed_s=30, measures=measures)
    assert early.action == "wait" and early.message.endswith("30 s left at this step")
    assert decide(spec(), phase="live", step=0, elapsed_s=60, measures=measures).action == "advance"
    last = decide(spec(), phase="live", step=1, elapsed_s=60, measures=Measures(target_requests=150))
    assert last.action == "succeed"
    assert last.message == "step 2 (100 %) passed: error rate 0.0 % ≤ 1 % over 150 answers"


def test_the_mirror_phase_fails_when_answers_disagree_and_passes_when_they_agree() -> None:
    mirrored = spec(mirror_first={"percent": 10, "duration": "30s", "min_agreement": 99, "min_pairs": 20})
    bad = decide(mirrored, phase="mirror", step=0, elapsed_s=5, measures=Measures(compared=25, agreed=0))
    assert bad.action == "fail"
    assert bad.message == "mirror (10 %): agreement 0.0 % < 99 % over 25 compared answers"
    good = decide(mirrored, phase="mirror", step=0, elapsed_s=30, measures=Measures(compared=25, agreed=25))
    assert good.action == "advance"


def test_the_spec_names_what_is_wrong() -> None:
    import pytest

    from apps.core.errors import ApplicationError

    cases = {
        "steps: must rise step by step, got 10 after 50": {"deployment": "g", "steps": [50, 10, 100]},
        "steps: must end at 100 (the target takes all traffic when the rollout succeeds), got 50": {
            "deployment": "g",
            "steps": [10, 50],
        },
        "step_duration: expected a duration such as 60s, 2m or 1h, got 'soon'": {
            "deployment": "g",
            "step_duration": "soon",
        },
        "gates.max_error_rate: expected a number or an integer from 0 to 100, got 150": {
            "deployment": "g",
            "gates": {"max_error_rate": 150},
        },
        "deployment: required key is missing (expected the target deployment's name)": {},
        "on_failure: expected one of rollback, pause, got 'panic'": {"deployment": "g", "on_failure": "panic"},
    }
    for message, doc in cases.items():
        with pytest.raises(ApplicationError) as caught:
            rollout_spec(doc)
        assert caught.value.message == message
