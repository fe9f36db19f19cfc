"""Code versions: the one Azure asset the studio itself has no noun for (a deployment names a code snapshot)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class CodeVersion(BaseModel):
    """A named code asset version (`codes/<name>/versions/<version>`) pointing at a content-addressed snapshot."""

    name = models.CharField(max_length=255)
    version = models.CharField(max_length=64)
    code_path = models.CharField(max_length=255, help_text="The snapshot, relative to MEDIA_ROOT (code/<digest>).")
    content_hash = models.CharField(max_length=128, blank=True, db_index=True, help_text="The SDK's hash of it.")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="arm_code_name_version")]

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"
