"""Pages that belong to no one app: the home redirect and the vendored plotly.js."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


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
