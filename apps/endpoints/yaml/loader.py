"""YAML loaded with limits, so a hostile document is refused in milliseconds instead of expanding.

An alias bomb (anchors referring to anchors) is a few hundred bytes that expand to gigabytes once the
document is turned into JSON and stored; a document nested 20 000 deep overflows the recursive composer.
The parser's event stream is scanned first (libyaml's parser is iterative) counting aliases, nesting depth
and the number of nodes the document has once every alias is expanded; only a document within all limits
is then constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(ValueError):
    """The text is not YAML, or is YAML beyond one of the limits (the message names it)."""


def check_limits(text: str) -> None:
    """Raise YamlRefused when `text` passes a limit on size, aliases, nesting or expanded size."""
    if len(text) > MAX_BYTES:
        raise YamlRefused(f"is {len(text)} characters long, more than the limit of {MAX_BYTES}")
    aliases = 0
    expanded = 0
    # One counter per open collection: the nodes it holds once expanded, and its anchor.
    stack: list[tuple[int, str | None]] = []
    anchored: dict[str, int] = {}
    try:
        for event in yaml.parse(text, Loader=_Loader):
            size = 0
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YamlRefused(f"uses more than {MAX_ALIASES} aliases (the limit on YAML aliases)")
                size = anchored.get(event.anchor or "", 1)
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor:
                    anchored[event.anchor] = 1
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append((expanded, event.anchor))
                if len(stack) > MAX_DEPTH:
                    raise YamlRefused(f"is nested more than {MAX_DEPTH} levels deep (the limit on YAML nesting)")
                expanded += 1
                continue
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                began, anchor = stack.pop()
                if anchor:
                    anchored[anchor] = expanded - began
                continue
            else:
                continue
            expanded += size
            if expanded > MAX_EXPANDED_NODES:
                raise YamlRefused(
                    f"expands to more than {MAX_EXPANDED_NODES} values once its aliases are resolved "
                    "(the limit on a YAML document's expanded size)"
                )
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own flow-level limit, met before ours
            raise YamlRefused(f"is nested more than {MAX_DEPTH} levels deep (the limit on YAML nesting)") from None
        raise YamlRefused(f"is not valid YAML: {exc}") from None


def load_limited(text: str) -> Any:
    """The document in `text`, refused with YamlRefused when it passes one of the limits."""
    check_limits(text)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        raise YamlRefused(f"is not valid YAML: {exc}") from None
