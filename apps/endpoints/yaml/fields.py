"""A small strict schema language: every key known, every type checked, defaults filled in.

Errors name the key by its dotted path and say what was expected, e.g.
`request_settings.request_timeout_ms: expected an integer from 1 to 180000, got '5s'`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apps.core.errors import ApplicationError

_MISSING: Any = object()


@dataclass(frozen=True)
class Field:
    """One key: its kind, whether it is required, its default and its bounds."""

    kind: str  # "str", "int", "bool", "number", "object", "map", "list", "any"
    required: bool = False
    default: Any = _MISSING  # a value, or a callable making one (for mutable defaults)
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    children: Mapping[str, Field] | None = None  # for kind="object": a strict nested schema
    alternatives: tuple[str, ...] = ()  # other kinds accepted, e.g. ("object",) for model: str | object
    unsupported: str = ""  # when set, the key is refused with this reason
    check: Callable[[Any, str], Any] | None = None  # extra validation returning the cleaned value
    help: str = ""

    def expectation(self) -> str:
        if self.help:
            return self.help
        if self.choices:
            return "one of " + ", ".join(self.choices)
        words = {
            "str": "a string",
            "int": "an integer",
            "bool": "true or false",
            "number": "a number",
            "object": "a mapping",
            "map": "a mapping of names to values",
            "list": "a list",
        }
        text = " or ".join(words.get(kind, kind) for kind in (self.kind, *self.alternatives))
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum:g} to {self.maximum:g}"
        elif self.minimum is not None:
            text += f" of at least {self.minimum:g}"
        return text


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _matches(kind: str, value: Any) -> bool:
    actual = _kind_of(value)
    if kind == "any":
        return True
    if kind == "number":
        return actual in ("int", "number")
    if kind == "map":
        return actual == "object"
    return actual == kind


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def fail(path: str, message: str) -> ApplicationError:
    """An ApplicationError naming the key."""
    return ApplicationError(f"{path}: {message}" if path else message, field=path or None)


def validate(doc: Any, schema: Mapping[str, Field], *, path: str = "") -> dict[str, Any]:
    """Check a mapping against a schema and return it with defaults filled in."""
    if not isinstance(doc, Mapping):
        raise fail(path, f"expected a mapping of keys, got {_describe(doc)}")
    unknown = [key for key in doc if key not in schema]
    if unknown:
        where = f"{path}." if path else ""
        known = ", ".join(sorted(k for k, f in schema.items() if not f.unsupported))
        raise fail(f"{where}{unknown[0]}", f"unknown key; expected one of: {known}")
    cleaned: dict[str, Any] = {}
    for key, spec in schema.items():
        key_path = f"{path}.{key}" if path else key
        if key not in doc or doc[key] is None:
            if spec.required:
                raise fail(key_path, f"required key is missing (expected {spec.expectation()})")
            if spec.default is not _MISSING:
                cleaned[key] = spec.default() if callable(spec.default) else spec.default
            continue
        if spec.unsupported:
            raise fail(key_path, spec.unsupported)
        cleaned[key] = clean_value(doc[key], spec, key_path)
    return cleaned


def clean_value(value: Any, spec: Field, path: str) -> Any:
    """Check one value against its field."""
    kinds = (spec.kind, *spec.alternatives)
    if not any(_matches(kind, value) for kind in kinds):
        raise fail(path, f"expected {spec.expectation()}, got {_describe(value)}")
    if spec.choices is not None and value not in spec.choices:
        raise fail(path, f"expected {spec.expectation()}, got {_describe(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            raise fail(path, f"expected {spec.expectation()}, got {value!r}")
    if spec.kind == "object" and spec.children is not None and isinstance(value, Mapping):
        value = validate(value, spec.children, path=path)
    if spec.kind == "map" and isinstance(value, Mapping):
        value = {str(k): v for k, v in value.items()}
    if spec.check is not None:
        value = spec.check(value, path)
    return value


def string_map(value: Mapping[str, Any], path: str) -> dict[str, str]:
    """A mapping whose values are scalars, kept as strings (tags, environment variables)."""
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, (Mapping, list)):
            raise fail(f"{path}.{key}", f"expected a string, got {_describe(item)}")
        out[str(key)] = "" if item is None else (str(item).lower() if isinstance(item, bool) else str(item))
    return out


def bounded_text(limit: int) -> Callable[[Any, str], str]:
    """A check refusing strings longer than `limit` characters (descriptions)."""

    def check(value: Any, path: str) -> str:
        text = str(value)
        if len(text) > limit:
            raise fail(path, f"is {len(text)} characters long, at most {limit} are accepted")
        return text

    return check


def bounded_map(*, entries: int, key_chars: int, value_chars: int) -> Callable[[Any, str], dict[str, str]]:
    """`string_map` with at most `entries` keys of bounded length (tags, environment variables)."""

    def check(value: Mapping[str, Any], path: str) -> dict[str, str]:
        if len(value) > entries:
            raise fail(path, f"has {len(value)} entries, at most {entries} are accepted")
        out = string_map(value, path)
        for key, item in out.items():
            if len(key) > key_chars:
                raise fail(path, f"key {key[:40]!r}... is {len(key)} characters long, at most {key_chars}")
            if len(item) > value_chars:
                raise fail(f"{path}.{key}", f"is {len(item)} characters long, at most {value_chars} are accepted")
        return out

    return check


def percent_map(value: Mapping[str, Any], path: str) -> dict[str, int]:
    """A mapping of deployment names to whole percentages from 0 to 100."""
    out: dict[str, int] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 100:
            raise fail(f"{path}.{key}", f"expected a whole percentage from 0 to 100, got {_describe(item)}")
        out[str(key)] = item
    return out


def object_field(children: Mapping[str, Field], **kwargs: Any) -> Field:
    """A nested strict mapping whose defaults apply when the key is absent."""
    return Field("object", children=children, default=lambda: validate({}, children), **kwargs)
