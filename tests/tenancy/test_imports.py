"""Tenancy's modules import each other without a cycle, lazy imports inside functions included.

A cycle hidden behind an import inside a function (as ``socle-tenants`` and its offboarding
commands once had) works until someone moves the import up; this reads every import
statement of the sources and fails on any cycle between modules.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import socle_tenancy

ROOT = Path(socle_tenancy.__file__).parent
PACKAGE = "socle_tenancy"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "migrations" not in p.parts}


def _resolve(name: str) -> str | None:
    """The module an imported name lands in (a module, else its package), if it is one of ours."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target) if target.startswith(PACKAGE) else None
            if resolved and resolved != module:
                found.add(resolved)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_tenancy_modules() -> None:
    graph = {module: _imports(module) for module in MODULES}
    assert graph["socle_tenancy.domain.offboarding.cli"], "the graph must see the offboarding commands' imports"
    cycle = _cycle(graph)
    assert cycle is None, " → ".join(cycle or [])


def test_the_keycloak_adapter_is_not_onboardings() -> None:
    """Offboarding and the tenants' API use it too: it lives beside the domains, not in one of them."""
    users = {m for m, imports in ((m, _imports(m)) for m in MODULES) if "socle_tenancy.keycloak" in imports}
    assert {"socle_tenancy.domain.offboarding.services", "socle_tenancy.domain.onboarding.services"} <= users
    assert not (ROOT / "domain" / "onboarding" / "keycloak.py").exists()


@pytest.mark.parametrize("module", ["socle_tenancy.domain.offboarding.cli", "socle_tenancy.domain.declarations.cli"])
def test_each_command_module_imports_first_on_its_own(module: str) -> None:
    """Imported first in a fresh interpreter, each command module loads (no half-initialised partner)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert importlib.import_module(module)
