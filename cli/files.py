"""Azure ML v2 YAML files on the client side: load, `--set`, and local paths turned into uploads.

Only what needs the local disk happens here (finding files relative to the YAML's folder, zipping
folders, reading conda files); every other check is the server's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cli.client import Studio
from cli.errors import ApiError, CliError

# Values that already name something the server knows (or a remote store): sent unchanged.
REMOTE_PREFIXES = ("azureml:", "upload:", "code:")
SKIPPED_DIRS = {"__pycache__"}  # bytecode is rebuilt where the code runs; no need to ship it


@dataclass
class YamlFile:
    """A YAML document and where it came from (its folder anchors relative paths)."""

    label: str  # the path as the user typed it, used to prefix messages
    folder: Path
    doc: dict[str, Any]


def load_yaml(path_arg: str) -> YamlFile:
    """Read an Azure ML v2 YAML file into a mapping."""
    path = Path(path_arg).expanduser()
    if not path.is_file():
        raise CliError(
            f"--file: {path_arg} does not exist" if not path.exists() else f"--file: {path_arg} is not a file"
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path_arg}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{path_arg}: is not valid YAML ({' '.join(str(exc).split())})") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise CliError(f"{path_arg}: expected a YAML mapping of keys, got a {type(doc).__name__}")
    return YamlFile(label=path_arg, folder=path.resolve().parent, doc=_jsonable(doc))


def _jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    # YAML dates and other non-JSON scalars become strings so the server sees what the file says.
    return json.loads(json.dumps(doc, default=str))


def parse_scalar(raw: str) -> Any:
    """A `--set` value read as a YAML scalar (2 → int, true → bool, 'a b' → str)."""
    if not raw.strip():
        return raw
    try:
        value = yaml.safe_load(raw)
        json.dumps(value)
    except (yaml.YAMLError, TypeError, ValueError):
        return raw
    return value


_SET_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def set_path(key: str) -> list[str | int]:
    """`a.b[0].c` (or `a.b.0.c`) → ["a", "b", 0, "c"]; a bracketed number is a list index."""
    parts: list[str | int] = []
    for piece in key.split("."):
        if not piece:
            raise CliError(f"--set {key}: empty name between dots")
        matched = 0
        for match in _SET_PART.finditer(piece):
            if match.start() != matched:
                break
            parts.append(match[1] if match[1] is not None else int(match[2]))
            matched = match.end()
        if matched != len(piece):
            raise CliError(f"--set {key}: cannot read {piece!r} (expected name, name[index] or index)")
    return parts


def _step(container: Any, part: str | int, *, key: str, where: str, create: Any) -> Any:
    """The child of a mapping or list at `part`, created (as `create()`) where a mapping lacks it."""
    if isinstance(container, list):
        index = _index(part, container, key=key, where=where)
        return container[index]
    if not isinstance(container, dict):
        raise CliError(f"--set {key}: {where} is {container!r}, not a mapping or a list")
    name = str(part)
    child = container.get(name)
    if child is None:
        child = container[name] = create()
    return child


def _index(part: str | int, items: list[Any], *, key: str, where: str) -> int:
    try:
        index = int(part)
    except ValueError:
        raise CliError(f"--set {key}: {where} is a list; expected an index, got {part!r}") from None
    if not -len(items) <= index < len(items):
        raise CliError(f"--set {key}: {where} has {len(items)} item(s); index {index} is out of range")
    return index


def apply_sets(doc: dict[str, Any], assignments: list[str] | None) -> set[str]:
    """Apply `--set a.b=value` / `a.b[0].c=value` to the document in place, as `az ml` does, before
    anything is read from it; returns the top-level keys touched."""
    touched: set[str] = set()
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--set: expected key=value with a dotted key such as instance_count=2, got {item!r}")
        parts = set_path(key)
        if not isinstance(parts[0], str):
            raise CliError(f"--set {key}: must start with a key name")
        target: Any = doc
        for depth, part in enumerate(parts[:-1]):
            where = _where(parts[:depth]) or "the document"
            following = parts[depth + 1]
            target = _step(target, part, key=key, where=where, create=list if isinstance(following, int) else dict)
        last = parts[-1]
        value = parse_scalar(raw)
        if isinstance(target, list):
            if isinstance(last, int) and last == len(target):
                target.append(value)  # one past the end adds an item
            else:
                target[_index(last, target, key=key, where=_where(parts[:-1]))] = value
        elif isinstance(target, dict):
            target[str(last)] = value
        else:
            raise CliError(f"--set {key}: {_where(parts[:-1])} is {target!r}, not a mapping or a list")
        touched.add(str(parts[0]))
    return touched


def _where(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass
class Uploader:
    """Turns local paths named in a YAML document into `upload:<id>` references."""

    studio: Studio
    folder: Path  # relative paths are resolved against this
    label: str | None  # the YAML file, for messages
    _done: dict[tuple[Path, str], str] = field(default_factory=dict)

    def _where(self, key: str) -> str:
        return f"{self.label}: {key}" if self.label else key

    def local(self, value: Any, key: str) -> Path | None:
        """The local path a value names, or None when it names something remote."""
        if not isinstance(value, str) or value.startswith(REMOTE_PREFIXES) or "://" in value:
            return None
        path = (self.folder / Path(value).expanduser()).resolve()
        if not path.exists():
            raise CliError(f"{self._where(key)}: {value} does not exist (looked for {path})")
        return path

    def path(self, container: dict[str, Any], name: str, key: str, *, folder_only: bool = False) -> None:
        """Upload the file or folder at container[name], and put its `upload:<id>` there instead."""
        local = self.local(container.get(name), key)
        if local is None:
            return
        if folder_only and not local.is_dir():
            raise CliError(f"{self._where(key)}: {container[name]} is a file; expected a folder")
        kind = "folder" if local.is_dir() else "file"
        if (local, kind) not in self._done:
            self._done[(local, kind)] = self._send(local, kind, key)
        container[name] = f"upload:{self._done[(local, kind)]}"

    def _send(self, local: Path, kind: str, key: str) -> str:
        try:
            with tempfile.TemporaryFile() as stream:
                if kind == "folder":
                    _zip_folder(local, stream)
                    stream.seek(0)
                    answer = self.studio.upload(stream=stream, name=local.name, kind=kind)
                else:
                    with local.open("rb") as source:
                        answer = self.studio.upload(stream=source, name=local.name, kind=kind)
        except ApiError as exc:
            raise CliError(f"{self._where(key)}: uploading {local} failed: {exc.message}") from None
        except OSError as exc:
            raise CliError(f"{self._where(key)}: cannot read {local} ({exc})") from None
        return str(answer["id"])

    def conda_file(self, container: dict[str, Any], key: str) -> None:
        """Replace a conda file's path with its text, checked here first (the server takes it inline and keeps
        the text as typed)."""
        local = self.local(container.get("conda_file"), key)
        if local is None:
            return
        if not local.is_file():
            raise CliError(f"{self._where(key)}: {container['conda_file']} is a folder; expected a conda YAML file")
        try:
            text = local.read_text()
            content = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{self._where(key)}: cannot read {local} ({exc})") from None
        except yaml.YAMLError as exc:
            raise CliError(f"{self._where(key)}: {local} is not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(content, dict):
            raise CliError(f"{self._where(key)}: {local} is not a conda environment (expected a mapping)")
        container["conda_file"] = text if text.endswith("\n") else text + "\n"

    def environment(self, env: Any, prefix: str = "") -> None:
        """Resolve an environment document's conda_file and build.path."""
        if not isinstance(env, dict):
            return
        self.conda_file(env, f"{prefix}conda_file")
        if isinstance(env.get("build"), dict):
            self.path(env["build"], "path", f"{prefix}build.path", folder_only=True)

    def model(self, model: Any, prefix: str = "") -> None:
        """Resolve a model document's path (a file or a folder)."""
        if isinstance(model, dict):
            self.path(model, "path", f"{prefix}path")

    def deployment(self, doc: dict[str, Any]) -> None:
        """Resolve the code folder, an inline model and an inline environment of a deployment."""
        if isinstance(doc.get("code_configuration"), dict):
            self.path(doc["code_configuration"], "code", "code_configuration.code", folder_only=True)
        self.model(doc.get("model"), "model.")
        self.environment(doc.get("environment"), "environment.")


def _zip_folder(root: Path, stream: Any) -> None:
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                full = Path(folder) / name
                archive.write(full, full.relative_to(root).as_posix())


def prefixed(label: str | None, exc: ApiError) -> CliError:
    """A validation error of the server, prefixed with the YAML file it concerns."""
    if label and exc.status in (400, 409):
        return CliError(f"{label}: {exc.message}")
    return exc
