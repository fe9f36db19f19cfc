"""The data plane stays apart: only gateway/source.py reaches into Django or apps/, and the runtime into neither.

The import statements are pyproject.toml's import contracts (tests/test_code_quality.py runs them); these
tests check what importing the modules in a fresh interpreter actually loads, however it is imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
