"""The studio's form renderer: every form field renders through one template (docs/ui.md)."""

from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class StudioFormRenderer(TemplatesSetting):
    """Django's renderer with the studio's field layout: label above, help below, error under the field."""

    field_template_name = "forms/field.html"
