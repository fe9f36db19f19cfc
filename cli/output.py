"""`--query` (JMESPath) and `-o json|tsv|table|yaml`, shaped like the `az` CLI's output."""

from __future__ import annotations

import json
import shutil
from typing import Any

import jmespath
import jmespath.exceptions
import yaml

from cli.errors import CliError

FORMATS = ("json", "tsv", "table", "yaml")


def query(data: Any, expression: str | None) -> Any:
    """Apply a JMESPath expression, as `az ... --query` does."""
    if not expression:
        return data
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as exc:
        reason = str(exc).splitlines()[0].rstrip(":")
        raise CliError(f"--query: {expression!r} is not a valid JMESPath expression ({reason})") from None


def render(data: Any, output: str = "json", columns: tuple[str, ...] | None = None) -> str:
    """The text printed on stdout for a result ('' for no result); `columns` picks a table's columns."""
    if data is None:
        return ""
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    if output == "tsv":
        return _tsv(data)
    if output == "table":
        return _table(data, columns)
    raise CliError(f"--output: expected one of {', '.join(FORMATS)}, got {output!r}")


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _tsv_row(value: Any) -> str:
    # Like az: a mapping prints its scalar values in key order; nested structures are left out.
    if isinstance(value, dict):
        return "\t".join(_scalar(item) for item in value.values() if _is_scalar(item))
    if isinstance(value, list):
        return "\t".join(_scalar(item) for item in value if _is_scalar(item))
    return _scalar(value)


def _tsv(data: Any) -> str:
    if isinstance(data, list):
        return "\n".join(_tsv_row(item) for item in data)
    return _tsv_row(data)


def _table(data: Any, chosen: tuple[str, ...] | None = None) -> str:
    rows = data if isinstance(data, list) else [data]
    if not rows:
        return ""
    if all(_is_scalar(row) for row in rows):
        cells = [[_scalar(row)] for row in rows]
        columns = ["Result"]
    else:
        columns = []
        for row in rows:
            for key, value in row.items() if isinstance(row, dict) else []:
                if _is_scalar(value) and key not in columns:
                    columns.append(key)
        if chosen:
            columns = [key for key in chosen if key in columns] or columns
        cells = [[_scalar(row.get(key)) if isinstance(row, dict) else "" for key in columns] for row in rows]
    headers = [_title(column) for column in columns]
    cells = [[" ".join(cell.split()) for cell in row] for row in cells]  # a cell is one line
    widths = [max(len(headers[i]), *(len(cell[i]) for cell in cells)) for i in range(len(columns))]
    widths = fit_widths(widths, terminal_width())
    headers, cells = headers[: len(widths)], [row[: len(widths)] for row in cells]
    lines = ["  ".join(_cut(header, width) for header, width in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(_cut(cell, width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


MIN_COLUMN = 12  # a column is not squeezed below this; when even that does not fit, the last columns go


def terminal_width() -> int:
    """The width tables must fit: $COLUMNS, else the terminal's, else 120 (a pipe or a file)."""
    return shutil.get_terminal_size((120, 24)).columns


def fit_widths(widths: list[int], total: int) -> list[int]:
    """Column widths that fit `total` characters with two-space gaps: the widest columns give way first, down
    to MIN_COLUMN; if that is not enough the last columns are left out (the list returned is shorter)."""
    floors = [min(width, MIN_COLUMN) for width in widths]
    while len(floors) > 1 and sum(floors) + 2 * (len(floors) - 1) > total:
        floors.pop()
    widths = widths[: len(floors)]
    budget = total - 2 * (len(widths) - 1)
    while sum(widths) > budget:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _cut(text: str, width: int) -> str:
    # Long text ends with an ellipsis; the whole value is in `-o json`.
    if len(text) <= width:
        return text.ljust(width)
    return text[: max(width - 1, 0)] + "…"


def _title(key: str) -> str:
    # az's table headers: provisioning_state -> ProvisioningState
    return "".join(part[:1].upper() + part[1:] for part in key.replace("-", "_").split("_"))
