"""URL map: the studio pages, the REST API under /api/v1/, and its OpenAPI schema."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core.health import healthz, livez
from apps.core.views import favicon, styleguide

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("styleguide/", styleguide, name="styleguide"),
    path("livez", livez, name="livez"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.endpoints.api.urls")),
    path("api/v1/", include("apps.monitoring.api_urls")),
    path("api/v1/", include("apps.costs.api_urls")),
    path("api/v1/", include("apps.rollouts.api_urls")),
    path("api/v1/", include("apps.accounts.api_urls")),
    path("azure/", include("apps.arm.api.urls")),  # the Azure Resource Manager shape azure-ai-ml speaks
    # Behind sign-in; the split view serves Swagger UI's start-up script as a file, so no inline script.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path("", include("apps.accounts.urls")),
    path("", include("apps.monitoring.urls")),
    path("", include("apps.costs.urls")),
    path("", include("apps.rollouts.urls")),
    path("", include("apps.endpoints.urls")),
]

# Under /api/ these answer the API's JSON error shape (apps/core/errorpages.py).
handler400 = "apps.core.errorpages.bad_request"
handler403 = "apps.core.errorpages.permission_denied"
handler404 = "apps.core.errorpages.page_not_found"
handler500 = "apps.core.errorpages.server_error"
