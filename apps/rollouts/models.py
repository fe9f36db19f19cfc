"""A progressive rollout of one endpoint's live traffic to one target deployment."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel
from apps.endpoints.models import Endpoint


class Rollout(BaseModel):
    """Moves an endpoint's live traffic from its baseline to a target in steps judged on real traffic.

    Where it is (phase, step, the clock of the step) lives here, so a restarted worker carries on at the
    same step with the same time spent; the clock only advances while evaluations run.
    """

    class State(models.TextChoices):
        RUNNING = "Running"
        PAUSED = "Paused"
        SUCCEEDED = "Succeeded"
        ROLLED_BACK = "RolledBack"
        ABORTED = "Aborted"

    class Phase(models.TextChoices):
        MIRROR = "mirror"
        LIVE = "live"

    ACTIVE = (State.RUNNING, State.PAUSED)

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="rollouts")
    target = models.CharField(max_length=32, help_text="The deployment traffic moves to.")
    spec = models.JSONField(help_text="The checked rollout document (durations in seconds).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING, db_index=True)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.LIVE)
    step = models.PositiveIntegerField(default=0, help_text="Index into spec.steps (live phase).")
    step_started_at = models.DateTimeField(help_text="Start of the current step's measuring window.")
    step_elapsed_s = models.FloatField(default=0, help_text="Time spent at this step while evaluated.")
    last_tick_at = models.DateTimeField(null=True, blank=True)
    baseline_traffic = models.JSONField(default=dict, blank=True, help_text="The split the rollout started from.")
    baseline_mirror = models.JSONField(default=dict, blank=True)
    gates = models.JSONField(default=list, blank=True, help_text="The last evaluation's gate values.")
    sample = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True, help_text="The last evaluation, in words.")
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=models.Q(state__in=["Running", "Paused"]),
                name="rollout_one_active_per_endpoint",
            )
        ]

    @property
    def active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def percent(self) -> int:
        """The target's share of live traffic at the current position."""
        return 0 if self.phase == self.Phase.MIRROR else int(self.spec["steps"][self.step])

    def __str__(self) -> str:
        return f"{self.endpoint} → {self.target} ({self.state})"
