"""STYLE.md's checks, run with the suite so CI holds them: ruff (lint, format), mypy, the import contracts
(pyproject.toml's [tool.importlinter]: layers point one way) and no import cycle between modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("apps", "studio", "gateway", "runtime", "cli")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=280
    )


def test_ruff_finds_nothing_to_fix() -> None:
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatting = _run("ruff", "format", "--check", ".")
    assert formatting.returncode == 0, formatting.stdout + formatting.stderr


def test_mypy_is_clean() -> None:
    result = _run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_import_contracts_hold() -> None:
    # --no-cache: nothing left behind in the checkout.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def import_cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The groups of `modules` that import each other round in a loop (strongly connected, Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step) & modules))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or module in graph.find_modules_directly_imported_by(module):
                    cycles.append(sorted(group))
    return cycles


def test_no_module_imports_itself_round_a_loop() -> None:
    # Every import statement counts, inside functions too, so an import hidden in a function to dodge a cycle is one.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = {module for module in graph.modules if module.split(".")[0] in PACKAGES}

    assert import_cycles(graph, modules) == []


def test_import_cycles_finds_a_loop_through_three_modules() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a.one", "a.two"), ("a.two", "a.three"), ("a.three", "a.one"), ("a.one", "a.four")]:
        graph.add_import(importer=importer, imported=imported)

    assert import_cycles(graph, set(graph.modules)) == [["a.one", "a.three", "a.two"]]
