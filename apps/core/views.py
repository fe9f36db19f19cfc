"""Pages that belong to no one app: the home redirect, the favicon, the vendored plotly.js and the style guide."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET


@cache
def _favicon() -> bytes:
    path = finders.find("img/favicon.svg")
    return Path(str(path)).read_bytes()


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for whatever the page links (else a "Not Found" line per page): the SVG."""
    response = HttpResponse(_favicon(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The studio opens on its endpoints."""
    return redirect("endpoints")


@cache
def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@require_GET
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js served from the installed `plotly` package (4+ MB, so not copied into the repo)."""
    path = _plotly_js()
    if path is None:
        raise Http404("plotly.min.js is not installed (pip install plotly)")
    response = FileResponse(path.open("rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response


class _SampleForm(forms.Form):
    """The style guide's form: one field of each kind, one of them in error."""

    name = forms.RegexField(
        label="Endpoint name",
        regex=r"^[A-Za-z][A-Za-z0-9-]{2,31}$",
        help_text="3-32 characters: a letter first, then letters, digits and dashes.",
        error_messages={"invalid": "name: must start with a letter, got '1-bad name'"},
    )
    instance_count = forms.IntegerField(label="Instance count", min_value=1, help_text="At least 1.")
    auth_mode = forms.ChoiceField(label="Auth mode", choices=[("key", "key"), ("aml_token", "aml_token")])
    notes = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    all_traffic = forms.BooleanField(
        label="Send all traffic here", required=False, help_text="Only for a first deployment."
    )


@login_required
@require_GET
def styleguide(request: HttpRequest) -> HttpResponse:
    """Every component of the studio's visual language on one page (docs/ui.md), for developers."""
    form = _SampleForm(data={"name": "1-bad name", "instance_count": "2", "auth_mode": "key"})
    form.is_valid()
    tokens = ["bg", "surface", "bg-soft", "fg", "muted", "line", "accent", "ok", "warn", "bad", "header"]
    rows = [
        {"name": "blue", "state": "Succeeded", "traffic": 90, "cost": "7.01"},
        {"name": "green", "state": "Updating", "traffic": 10, "cost": "3.50"},
        {"name": "shadow", "state": "Failed", "traffic": 0, "cost": "0.00"},
    ]
    trace = "\n".join(f'  File "/srv/instances/blue-0/code/score.py", line {n}, in init' for n in range(1, 9))
    context = {
        "form": form,
        "tokens": tokens,
        "tabs": ["Details", "Traffic", "Test", "Consume", "Monitoring", "Logs", "Events", "Costs"],
        "rows": rows,
        "failure_message": f"init() raised ValueError: model file missing\nTraceback (most recent call last):\n{trace}",
    }
    return render(request, "core/styleguide.html", context)
