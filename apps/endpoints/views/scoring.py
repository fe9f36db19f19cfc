"""The Test tab: the studio posts a request body to the gateway itself (no keys in the browser, no CORS)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from apps.accounts.permissions import requires
from apps.core.htmx import render_page_or_fragment
from apps.endpoints import selectors, services
from apps.endpoints.forms import TestForm
from apps.endpoints.models import Endpoint
from apps.endpoints.views.common import endpoint_or_404, tab_context


def _credential(endpoint: Endpoint) -> str:
    if endpoint.auth_mode == Endpoint.AuthMode.KEY:
        return endpoint.primary_key
    return services.token_issue(endpoint=endpoint)["accessToken"]


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="endpoint.test")
def endpoint_test(request: HttpRequest, name: str) -> HttpResponse:
    """The Test tab: the studio posts the body to the gateway itself (no keys in the browser, no CORS)."""
    endpoint = endpoint_or_404(name)
    names = [d.name for d in selectors.deployments_list(endpoint=endpoint)]
    form = TestForm(request.POST or None, deployments=names)
    result: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        headers = {"Authorization": f"Bearer {_credential(endpoint)}", "Content-Type": "application/json"}
        if form.cleaned_data["deployment"]:
            headers["azureml-model-deployment"] = form.cleaned_data["deployment"]
        started = time.perf_counter()
        try:
            response = httpx.post(
                endpoint.scoring_uri, content=form.cleaned_data["body"].encode(), headers=headers, timeout=60
            )
        except httpx.HTTPError as exc:
            form.add_error(None, f"the scoring gateway at {settings.STUDIO_GATEWAY_URL} did not answer: {exc}")
        else:
            body = response.text
            try:
                body = json.dumps(response.json(), indent=2)
            except ValueError:
                pass
            result = {
                "status": response.status_code,
                "deployment": response.headers.get("azureml-model-deployment", ""),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": response.headers.get("x-request-id", ""),
                "body": body[:100_000],
            }
    context = tab_context(request, endpoint, "test", form=form, result=result)
    status = 400 if form.errors else 200
    return render_page_or_fragment(
        request, "endpoints/endpoint_test.html", "endpoints/partials/_test.html", context, status=status
    )
