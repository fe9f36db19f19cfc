"""Writes of rollouts: start, pause, resume, promote, abort, and the evaluation beat runs.

The decisions are gates.decide's (pure); this layer measures, asks, and carries the answer out: traffic
through apps.endpoints.services.traffic_set, each change an event on the target's timeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.audit import record
from apps.core.errors import ApplicationError, Conflict
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, DeploymentEvent, Endpoint, ProvisioningState
from apps.endpoints.services import traffic_set
from apps.monitoring import announce as monitoring_announce
from apps.monitoring import services as monitoring
from apps.rollouts import announce, gates, selectors
from apps.rollouts.models import Rollout
from apps.rollouts.spec import rollout_spec

User = AbstractBaseUser | AnonymousUser | None
ACTIONS = ("pause", "resume", "promote", "abort")


def _actor(user: User) -> Any:
    return user if user is not None and user.is_authenticated else None


def _who(user: User) -> str:
    actor = _actor(user)
    return actor.get_username() if actor else "the studio"


def _split_text(traffic: dict[str, int]) -> str:
    return " ".join(f"{name}={percent}" for name, percent in traffic.items() if percent) or "no live traffic"


def _target(rollout: Rollout) -> Deployment | None:
    return rollout.endpoint.deployments.filter(name=rollout.target).first()


def _event(rollout: Rollout, reason: str, message: str, *, warning: bool = False) -> None:
    deployment = _target(rollout)
    if deployment is not None:
        kind = DeploymentEvent.Type.WARNING if warning else DeploymentEvent.Type.NORMAL
        event_record(deployment=deployment, reason=reason, message=message, type=kind)


def _move(rollout: Rollout, *, user: User = None) -> dict[str, int]:
    """Set the endpoint's traffic for the rollout's current position; returns the live split."""
    if rollout.phase == Rollout.Phase.MIRROR:
        split = gates.split_at(rollout.baseline_traffic, rollout.target, 0)
        mirror = {rollout.target: int(rollout.spec["mirror_first"]["percent"])}
    else:
        split = gates.split_at(rollout.baseline_traffic, rollout.target, rollout.percent)
        mirror = {}
    traffic_set(endpoint=rollout.endpoint, traffic=split, mirror_traffic=mirror, user=user, origin="rollout")
    return split


def _save(rollout: Rollout) -> None:
    rollout.full_clean()
    rollout.save()
    announce.rollout_changed(rollout.pk)


@transaction.atomic
def rollout_start(*, endpoint: Endpoint, doc: Any, user: User = None) -> Rollout:
    """Start moving live traffic to the target in steps; refused while another rollout runs on the endpoint."""
    spec = rollout_spec(doc)
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.local:
        raise ApplicationError(f"online endpoint {endpoint.name!r} is local: its one deployment takes every request")
    active = selectors.rollout_active(endpoint=endpoint)
    if active is not None:
        raise Conflict(
            f"online endpoint {endpoint.name!r} already has a rollout of {active.target!r} ({active.state}, "
            f"{gates.where(active.spec, phase=active.phase, step=active.step)}); one at a time: abort it first"
        )
    target = endpoint.deployments.filter(name=spec["deployment"]).first()
    if target is None or target.state == ProvisioningState.DELETING:
        names = ", ".join(endpoint.deployments.exclude(state=ProvisioningState.DELETING).values_list("name", flat=True))
        raise ApplicationError(
            f"deployment: {spec['deployment']!r} is not a deployment of online endpoint {endpoint.name!r} "
            f"(it has: {names or 'none'})",
            field="deployment",
        )
    if target.state != ProvisioningState.SUCCEEDED:
        raise ApplicationError(
            f"deployment: {target.name!r} is {target.state}; a rollout starts once it has Succeeded", field="deployment"
        )
    baseline = dict(endpoint.traffic)
    if not any(share for name, share in baseline.items() if name != target.name):
        raise ApplicationError(
            f"online endpoint {endpoint.name!r} has no baseline: no deployment other than {target.name!r} takes live "
            f"traffic ({_split_text(baseline)}); set its traffic with `online-endpoint update --traffic`"
        )
    now = timezone.now()
    rollout = Rollout(
        endpoint=endpoint,
        target=target.name,
        spec=spec,
        phase=Rollout.Phase.MIRROR if spec["mirror_first"] else Rollout.Phase.LIVE,
        step_started_at=now,
        last_tick_at=now,
        baseline_traffic=baseline,
        baseline_mirror=dict(endpoint.mirror_traffic),
        created_by=_actor(user),
    )
    rollout.message = f"{gates.where(spec, phase=rollout.phase, step=0)}: started"
    try:
        with transaction.atomic():
            _save(rollout)
    except IntegrityError:
        raise Conflict(f"online endpoint {endpoint.name!r} got another rollout at the same moment") from None
    steps = ", ".join(str(s) for s in spec["steps"])
    mirror = f"; {spec['mirror_first']['percent']} % mirrored first" if spec["mirror_first"] else ""
    _event(
        rollout,
        "RolloutStarted",
        f"rollout of {target.name} started by {_who(user)}: steps {steps} %{mirror}; baseline {_split_text(baseline)}",
    )
    target_text = f"rollout of deployment {target.name}"
    record("rollout.start", endpoint=endpoint.name, target=target_text, after={"steps": spec["steps"]}, user=user)
    split = _move(rollout, user=user)
    where = gates.where(spec, phase=rollout.phase, step=0)
    mirrored = f", {rollout.target} mirrored" if rollout.phase == Rollout.Phase.MIRROR else ""
    _event(rollout, "RolloutStep", f"{where}: {_split_text(split)}{mirrored}")
    return rollout


def _locked(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("endpoint").get(pk=rollout.pk)


def _finish(rollout: Rollout, state: str, message: str) -> None:
    rollout.state = state
    rollout.message = message
    rollout.finished_at = timezone.now()
    rollout.last_tick_at = None
    _save(rollout)


def _not_active(rollout: Rollout, action: str) -> ApplicationError:
    return Conflict(
        f"the rollout of {rollout.target!r} on {rollout.endpoint.name!r} is {rollout.state}; "
        f"only a Running or Paused rollout can {action}"
    )


@transaction.atomic
def rollout_act(*, rollout: Rollout, action: str, user: User = None) -> Rollout:
    """Pause, resume, promote (all traffic to the target now) or abort (back to the baseline) a rollout."""
    if action not in ACTIONS:
        raise ApplicationError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}", field="action")
    rollout = _locked(rollout)
    if not rollout.active:
        raise _not_active(rollout, action)
    where = gates.where(rollout.spec, phase=rollout.phase, step=rollout.step)
    who = _who(user)
    record(
        f"rollout.{action}", endpoint=rollout.endpoint.name, target=f"rollout of deployment {rollout.target}", user=user
    )
    if action == "pause":
        if rollout.state == Rollout.State.PAUSED:
            return rollout
        rollout.state = Rollout.State.PAUSED
        rollout.last_tick_at = None
        rollout.message = f"{where}: paused by {who}"
        _save(rollout)
        _event(
            rollout, "RolloutPaused", f"{where}: paused by {who}; traffic stays {_split_text(rollout.endpoint.traffic)}"
        )
    elif action == "resume":
        if rollout.state == Rollout.State.RUNNING:
            return rollout
        rollout.state = Rollout.State.RUNNING
        rollout.last_tick_at = timezone.now()
        rollout.message = f"{where}: resumed by {who}"
        _save(rollout)
        _event(rollout, "RolloutResumed", f"{where}: resumed by {who}")
    elif action == "promote":
        split = gates.split_at(rollout.baseline_traffic, rollout.target, 100)
        traffic_set(endpoint=rollout.endpoint, traffic=split, mirror_traffic={}, user=user, origin="rollout")
        _finish(rollout, Rollout.State.SUCCEEDED, f"{where}: promoted by {who}")
        _event(rollout, "RolloutPromoted", f"{where}: promoted by {who}: {_split_text(split)}")
    else:
        traffic_set(
            endpoint=rollout.endpoint,
            traffic=rollout.baseline_traffic,
            mirror_traffic=rollout.baseline_mirror,
            user=user,
            origin="rollout",
        )
        _finish(rollout, Rollout.State.ABORTED, f"{where}: aborted by {who}")
        _event(
            rollout,
            "RolloutAborted",
            f"{where}: aborted by {who}: back to {_split_text(rollout.baseline_traffic)}",
            warning=True,
        )
    return rollout


def rollout_abort_for_manual_change(*, rollout: Rollout, user: User, traffic: dict[str, int]) -> None:
    """A forced manual traffic change ends the rollout where it is (the change itself then applies)."""
    rollout = _locked(rollout)
    where = gates.where(rollout.spec, phase=rollout.phase, step=rollout.step)
    message = f"{where}: aborted: traffic set to {_split_text(traffic)} by {_who(user)} with --force"
    _finish(rollout, Rollout.State.ABORTED, message)
    _event(rollout, "RolloutAborted", message, warning=True)


def _tick_s() -> float:
    return settings.STUDIO_ROLLOUT_GATE_INTERVAL_MS / 1000


def _gone(rollout: Rollout) -> str | None:
    """Why the rollout cannot go on (its target or every baseline deployment was deleted), else None."""
    names = set(rollout.endpoint.deployments.exclude(state=ProvisioningState.DELETING).values_list("name", flat=True))
    if rollout.target not in names:
        return f"deployment {rollout.target!r} was deleted"
    if not any(share for name, share in rollout.baseline_traffic.items() if name in names and name != rollout.target):
        return "every baseline deployment was deleted"
    return None


@transaction.atomic
def rollout_evaluate(*, rollout_pk: int, now: datetime | None = None) -> Rollout | None:
    """One evaluation: advance the clock, judge the gates on the metrics store, carry the decision out."""
    rollout = Rollout.objects.select_for_update().select_related("endpoint").filter(pk=rollout_pk).first()
    if rollout is None or rollout.state != Rollout.State.RUNNING:
        return rollout
    now = now or timezone.now()
    where = gates.where(rollout.spec, phase=rollout.phase, step=rollout.step)
    reason = _gone(rollout)
    if reason is not None:
        _finish(rollout, Rollout.State.ABORTED, f"{where}: aborted: {reason}")
        _event(rollout, "RolloutAborted", rollout.message, warning=True)
        return rollout
    if rollout.last_tick_at is not None:
        # Time the studio was down (no evaluations) does not count: at most a few intervals per evaluation.
        gap = (now - rollout.last_tick_at).total_seconds()
        rollout.step_elapsed_s += max(0.0, min(gap, 3 * _tick_s()))
    rollout.last_tick_at = now
    decision = gates.decide(
        rollout.spec,
        phase=rollout.phase,
        step=rollout.step,
        elapsed_s=rollout.step_elapsed_s,
        measures=selectors.measures(rollout, now=now),
    )
    rollout.gates = [gate.view() for gate in decision.gates]
    rollout.sample = decision.sample
    rollout.message = decision.message
    if decision.action == "wait":
        _save(rollout)
    elif decision.action == "fail":
        _fail(rollout, decision.message)
    elif decision.action == "succeed":
        _finish(rollout, Rollout.State.SUCCEEDED, decision.message)
        _event(rollout, "RolloutSucceeded", f"{decision.message}: {rollout.target} takes all live traffic")
    else:
        if rollout.phase == Rollout.Phase.MIRROR:
            rollout.phase = Rollout.Phase.LIVE
            rollout.step = 0
        else:
            rollout.step += 1
        rollout.step_started_at = now
        rollout.step_elapsed_s = 0
        split = _move(rollout)
        _save(rollout)
        _event(
            rollout,
            "RolloutStep",
            f"{decision.message}; {gates.where(rollout.spec, phase=rollout.phase, step=rollout.step)}: "
            f"{_split_text(split)}",
        )
    return rollout


def _fail(rollout: Rollout, message: str) -> None:
    if rollout.spec["on_failure"] == "pause":
        rollout.state = Rollout.State.PAUSED
        rollout.last_tick_at = None
        rollout.message = f"{message}: paused"
        _save(rollout)
        _event(
            rollout,
            "RolloutPaused",
            f"{message}: paused with traffic at {_split_text(rollout.endpoint.traffic)}",
            warning=True,
        )
        return
    traffic_set(endpoint=rollout.endpoint, traffic=rollout.baseline_traffic, mirror_traffic={}, origin="rollout")
    text = f"{message}: rolled back to {_split_text(rollout.baseline_traffic)}"
    _finish(rollout, Rollout.State.ROLLED_BACK, text)
    _event(rollout, "RolloutRolledBack", text, warning=True)


def rollouts_evaluate(*, now: datetime | None = None) -> int:
    """Evaluate every running rollout (beat); first drain the gateways' metrics so the gates see the latest."""
    running = list(Rollout.objects.filter(state=Rollout.State.RUNNING).values_list("pk", flat=True))
    if not running:
        return 0
    drained = monitoring.metrics_ingest()
    monitoring.mirror_pairs_ingest()
    for pk in running:
        rollout_evaluate(rollout_pk=pk, now=now)
    # What this drain took is no longer there for the metrics task to push: the open charts hear it from here.
    monitoring_announce.charts_changed(endpoints=drained.endpoints)
    return len(running)
