"""`--query` (JMESPath) and `-o json|tsv|table|yaml`, shaped like the `az` CLI's output."""

from __future__ import annotations

import json
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


def render(data: Any, output: str = "json") -> str:
    """The text printed on stdout for a result ('' for no result)."""
    if data is None:
        return ""
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    if output == "tsv":
        return _tsv(data)
    if output == "table":
        return _table(data)
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


def _table(data: Any) -> str:
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
        cells = [[_scalar(row.get(key)) if isinstance(row, dict) else "" for key in columns] for row in rows]
    headers = [_title(column) for column in columns]
    widths = [max(len(headers[i]), *(len(cell[i]) for cell in cells)) for i in range(len(columns))]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _title(key: str) -> str:
    # az's table headers: provisioning_state -> ProvisioningState
    return "".join(part[:1].upper() + part[1:] for part in key.replace("-", "_").split("_"))
