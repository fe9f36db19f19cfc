"""Template helpers of the studio's visual language (docs/ui.md)."""

from __future__ import annotations

import re

from django import template
from django.forms import BoundField, CheckboxInput
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_YAML_KEY = re.compile(r"^(\s*(?:- )?)([\w.\-]+)(:)(?=\s|$)")


@register.filter
def is_checkbox(field: BoundField) -> bool:
    """Whether a form field is a single checkbox (its label goes beside it, not above)."""
    return isinstance(field.field.widget, CheckboxInput)


@register.filter
def first_line(text: str | None) -> str:
    """The first non-empty line of a message (a failure's one-line summary)."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


@register.filter
def yaml_highlight(text: str | None) -> SafeString:
    """YAML as typed, escaped, with keys and comments marked for the stylesheet (no script, no library)."""
    out = []
    for line in (text or "").splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            out.append(f'<span class="c">{escape(line)}</span>')
            continue
        match = _YAML_KEY.match(line)
        if match:
            rest = line[match.end() :]
            out.append(f'{escape(match.group(1))}<span class="k">{escape(match.group(2))}</span>:{escape(rest)}')
        else:
            out.append(str(escape(line)))
    return mark_safe("\n".join(out))  # noqa: S308 - every piece above is escaped
