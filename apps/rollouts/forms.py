"""The Traffic tab's "Start a rollout" form: the rollout YAML's keys with its defaults."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.core.errors import ApplicationError


class RolloutForm(forms.Form):
    deployment = forms.ChoiceField(label="Target deployment")
    steps = forms.CharField(initial="10, 25, 50, 100", label="Steps (% of live traffic to the target)")
    step_duration = forms.CharField(initial="60s", label="At least this long at each step")
    min_requests = forms.IntegerField(initial=100, min_value=1, label="Answers before a step is judged")
    max_error_rate = forms.FloatField(initial=1, min_value=0, max_value=100, label="Max error rate (%)")
    max_p99_ratio = forms.FloatField(initial=1.5, min_value=1, label="Max p99 ratio (target / baseline)")
    on_failure = forms.ChoiceField(choices=[("rollback", "roll back"), ("pause", "pause")], initial="rollback")
    mirror_first = forms.BooleanField(required=False, label="Shadow phase before live traffic")
    mirror_percent = forms.IntegerField(initial=10, min_value=1, max_value=50, required=False, label="Shadow share (%)")
    mirror_duration = forms.CharField(initial="60s", required=False, label="Shadow phase duration")
    min_agreement = forms.FloatField(
        initial=99, min_value=0, max_value=100, required=False, label="Min agreement with live answers (%)"
    )

    def __init__(self, *args: Any, targets: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["deployment"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(name, name) for name in targets]

    def document(self) -> dict[str, Any]:
        """The rollout YAML this form stands for (checked again by the service, which names any bad key)."""
        data = self.cleaned_data
        raw = [part for part in data["steps"].replace(",", " ").split() if part]
        if not all(part.isdigit() for part in raw):
            raise ApplicationError(f"steps: expected whole percentages such as 10, 25, 50, 100, got {data['steps']!r}")
        doc: dict[str, Any] = {
            "deployment": data["deployment"],
            "steps": [int(part) for part in raw],
            "step_duration": data["step_duration"],
            "min_requests": data["min_requests"],
            "gates": {"max_error_rate": data["max_error_rate"], "max_p99_ratio": data["max_p99_ratio"]},
            "on_failure": data["on_failure"],
        }
        if data.get("mirror_first"):
            doc["mirror_first"] = {
                "percent": data.get("mirror_percent") or 10,
                "duration": data.get("mirror_duration") or "60s",
                "min_agreement": 99 if data.get("min_agreement") is None else data["min_agreement"],
            }
        return doc
