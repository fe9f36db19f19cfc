"""`{% gate %}`: a control for an action the user's role lacks is shown disabled, with the role it needs.

    {% load roles %}
    <button type="submit"{% gate "traffic.set" %}>Apply</button>
    <a class="button"{% gate "endpoint.create" href=create_url %}>Create endpoint</a>

Allowed: the button as written, the link with its href. Refused: the button `disabled`; the link without an href,
still a link to assistive technology (`role="link"`, `aria-disabled`) and focusable so its title can be read; both
titled "needs Operator (you are Reader)". The decision is `permissions.control_refusal`, from the table the server
enforces, which still refuses the request.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.accounts.permissions import control_refusal

register = template.Library()


@register.simple_tag(takes_context=True)
def gate(context: template.Context, action: str, href: str = "") -> SafeString:
    """The attributes of the control for `action`: nothing extra when allowed, disabled and titled when not."""
    request = context.get("request")
    refusal = control_refusal(getattr(request, "user", None), action)
    if refusal is None:
        return format_html(' href="{}"', href) if href else SafeString("")
    needed, title = refusal
    if href:
        return format_html(
            ' role="link" aria-disabled="true" tabindex="0" title="{}" data-needs-role="{}"', title, needed
        )
    return format_html(' disabled title="{}" data-needs-role="{}"', title, needed)
