"""`studio up`'s restart decision, without processes (cli/supervision.py)."""

from __future__ import annotations

import pytest

from cli.supervision import Policy, after_exit, describe_exit

POLICY = Policy(backoff_s=0.5, backoff_max_s=10, healthy_after_s=10, max_start_failures=5)


def test_a_child_that_ran_a_while_is_restarted_after_the_first_back_off_and_its_failures_forgotten() -> None:
    decision = after_exit(POLICY, ran_s=120, start_failures=3)
    assert (decision.restart, decision.delay_s, decision.start_failures) == (True, 0.5, 0)


def test_failures_at_start_double_the_back_off_up_to_its_cap_then_give_up() -> None:
    delays = []
    failures = 0
    for _ in range(4):
        decision = after_exit(POLICY, ran_s=1, start_failures=failures)
        assert decision.restart
        delays.append(decision.delay_s)
        failures = decision.start_failures
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert after_exit(Policy(backoff_s=4, max_start_failures=9), ran_s=1, start_failures=3).delay_s == 10
    final = after_exit(POLICY, ran_s=1, start_failures=failures)
    assert (final.restart, final.start_failures) == (False, 5)


def test_exits_are_described_as_a_person_reads_them() -> None:
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(None) == "exited"


def test_a_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_UP_BACKOFF_MS", "soon")
    with pytest.raises(ValueError, match="STUDIO_UP_BACKOFF_MS must be a number, got 'soon'"):
        Policy.from_env()
