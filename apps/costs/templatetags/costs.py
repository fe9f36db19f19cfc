"""Money in templates: `{{ figure|cents }}` rounds a cost once, the way apps.costs.selectors.cents does."""

from __future__ import annotations

from decimal import Decimal

from django import template

from apps.costs.selectors import cents as round_cents

register = template.Library()


@register.filter
def cents(value: Decimal | None) -> str:
    """A cost to the cent (halves up); an empty string for no figure."""
    if value is None or value == "":
        return ""
    return f"{round_cents(Decimal(value)):.2f}"


@register.filter
def money(value: Decimal | None, currency: str = "USD") -> str:
    """A cost as money: rounded once to the cent, thousands grouped, then the currency (`1,234.56 USD`)."""
    if value is None or value == "":
        return ""
    return f"{round_cents(Decimal(value)):,.2f} {currency}"
