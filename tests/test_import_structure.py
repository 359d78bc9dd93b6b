"""Imports point one way: ``networks`` may import ``frontends`` and ``models`` (lazily, to load), but
neither imports ``networks``, and ``models`` imports no frontend. Checked on the source (every import
statement, inside functions too), so a lazy import cannot hide a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "imcflow"


def imported_modules(package: str) -> dict[str, set[str]]:
    """module file -> every ``imcflow.*`` module it imports (absolute imports only: the house style)."""
    out = {}
    root = PKG / package
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        out[str(path.relative_to(PKG))] = {m for m in found if m.startswith("imcflow")}
    return out


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for module, imports in imported_modules(package).items():
        hits = sorted(m for m in imports if any(m == f or m.startswith(f + ".") for f in forbidden))
        if hits:
            bad[module] = hits
    return bad


def test_frontends_and_models_do_not_import_networks():
    assert _offenders("frontends", ("imcflow.networks",)) == {}
    assert _offenders("models", ("imcflow.networks", "imcflow.frontends")) == {}


def test_the_network_file_reader_does_not_import_the_mapping_engine():
    # Composite layer kinds (kind: lowrank) come from imcflow.layers.COMPOSITE_LAYERS instead.
    assert _offenders("frontends/netfile.py", ("imcflow.mapping",)) == {}


def test_the_checker_sees_lazy_imports():
    # networks imports the tracer inside a function only: the checker must still see it.
    assert "imcflow.frontends.torch_trace" in imported_modules("networks")["networks/__init__.py"]
