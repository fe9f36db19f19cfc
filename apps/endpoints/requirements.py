"""Requirement lines are package specifications, nothing else.

A `pip_requirements` line or a conda file's `pip:` item is handed to the installer; pip's options (`-r`, `-c`,
`-e`, `--index-url`, `--find-links`, ...) and local paths would let an environment read files on the studio's
machine (a `-r /path/to/secret` echoes the file in the installer's error) or install from another index. So a
line must parse as a PEP 508 requirement (`packaging.requirements`): a name with extras, versions and markers,
or `name @ https://...` pointing at a wheel or sdist. Anything else is refused with the line's number.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement

MAX_LINES = 500
MAX_LINE_CHARS = 1000
URL_SCHEMES = ("https://", "http://")


def _shown(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def requirement_problem(line: str) -> str | None:
    """Why `line` is not an acceptable requirement specifier, or None when it is."""
    if len(line) > MAX_LINE_CHARS:
        return f"is longer than {MAX_LINE_CHARS} characters"
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        return (
            f"{_shown(option)} is a pip option; only package specifications are accepted "
            "(name, version, extras, markers or `name @ https://...`), no -r/-c/-e or index options"
        )
    if line.startswith((".", "/", "~", "\\")) or line.lower().startswith("file:"):
        return f"{_shown(line)} is a local path; only package specifications from the package index are accepted"
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        if "://" in line:
            return f"{_shown(line)} is a bare URL; write it as `name @ https://...`"
        return f"{_shown(line)} is not a package specification (expected e.g. `numpy==1.26.4` or `pandas>=2`)"
    if requirement.url is not None and not requirement.url.lower().startswith(URL_SCHEMES):
        return f"{_shown(line)} points at {requirement.url.split(':')[0]}:, only https:// URLs are accepted"
    return None


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) of a requirements.txt text: comments and blank lines left out."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def check(lines: list[tuple[int, str]], where: str, *, unit: str = "line") -> None:
    """Raise ValueError naming the first (numbered) line of `where` that is not a requirement specifier."""
    if len(lines) > MAX_LINES:
        raise ValueError(f"{where}: {len(lines)} requirements, at most {MAX_LINES} are accepted")
    for number, line in lines:
        problem = requirement_problem(line)
        if problem is not None:
            raise ValueError(f"{where} {unit} {number}: {problem}")
