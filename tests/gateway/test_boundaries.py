"""The data plane stays apart: only gateway/source.py reaches into Django or apps/, and the runtime into neither.

Read from the source (every import statement, inside functions too) and from a fresh interpreter (what
importing the modules actually loads, however indirectly).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
THE_ONE_MODULE = "gateway/source.py"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _offending(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        relative = str(path.relative_to(REPO))
        if relative in allowed:
            continue
        bad = sorted(name for name in _imports(path) if name.split(".")[0] in forbidden)
        if bad:
            found[relative] = bad
    return found


def _loaded_by(*modules: str) -> list[str]:
    """The top-level packages a fresh interpreter has loaded after importing `modules`."""
    code = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in modules)
        + "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_only_the_table_source_of_the_gateway_imports_django_or_apps() -> None:
    assert _offending("gateway", ("django", "apps", "studio", "cli"), allowed=(THE_ONE_MODULE,)) == {}
    # The one module does, which is what the exception above is for.
    assert {"django", "apps"} <= {name.split(".")[0] for name in _imports(REPO / THE_ONE_MODULE)}


def test_the_runtime_imports_nothing_of_django_apps_or_the_gateway() -> None:
    assert _offending("runtime", ("django", "apps", "studio", "cli", "gateway")) == {}


def test_importing_the_gateway_but_its_source_loads_no_django() -> None:
    modules = [f"gateway.{path.stem}" for path in (REPO / "gateway").glob("*.py")]
    modules = [m for m in modules if m not in ("gateway.source", "gateway.app", "gateway.__main__", "gateway.__init__")]
    loaded = _loaded_by(*modules)

    assert "gateway" in loaded and "runtime" in loaded  # it did import them (server.py uses runtime/http11.py)
    assert not {"django", "apps", "studio", "rest_framework", "celery"} & set(loaded)


def test_importing_the_runtime_loads_no_django_and_no_gateway() -> None:
    modules = [f"runtime.{path.stem}" for path in (REPO / "runtime").glob("*.py") if path.stem != "__main__"]
    loaded = _loaded_by(*modules)

    assert "runtime" in loaded
    assert not {"django", "apps", "studio", "gateway", "cli"} & set(loaded)
