"""URL map: the studio pages, the REST API under /api/v1/, and its OpenAPI schema."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.health import healthz

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.endpoints.api.urls")),
    path("api/v1/", include("apps.monitoring.api_urls")),
    path("api/v1/", include("apps.costs.api_urls")),
    path("api/v1/", include("apps.rollouts.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("apps.monitoring.urls")),
    path("", include("apps.costs.urls")),
    path("", include("apps.rollouts.urls")),
    path("", include("apps.endpoints.urls")),
]
