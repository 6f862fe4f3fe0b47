"""The shape of the durable layer (docs/architecture.md): services are passed in, one module
launches DBOS, and ``dsr/`` has no import circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "amplitude_dsr"


def _module(path: Path) -> str:
    name = "amplitude_dsr." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path, prefix: str) -> set[str]:
    """The modules under ``prefix`` that ``path`` imports (``from pkg import sub`` counts as
    importing ``pkg.sub`` when that is a module, else ``pkg``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    SRC.parent / sub.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(sub if is_module else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(prefix)}
    return found


def import_cycles(package: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    prefix = _module(package)
    graph = {_module(p): _imports(p, prefix) for p in package.rglob("*.py")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_dsr_has_no_import_circle() -> None:
    assert import_cycles(SRC / "dsr") == []


def test_the_cycle_finder_finds_a_circle(tmp_path: Path) -> None:
    # The check above can fail: two modules importing each other are reported.
    global SRC
    saved = SRC
    pkg = tmp_path / "amplitude_dsr" / "dsr"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from amplitude_dsr.dsr.b import x\n")
    (pkg / "b.py").write_text("from amplitude_dsr.dsr import a\nx = 1\n")
    SRC = tmp_path / "amplitude_dsr"
    try:
        assert import_cycles(pkg) == [["amplitude_dsr.dsr.a", "amplitude_dsr.dsr.b"]]
    finally:
        SRC = saved


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))]


def test_no_process_global_runtime_and_no_hard_exit() -> None:
    offenders = [
        str(p.relative_to(SRC))
        for p, text in _sources()
        if re.search(r"\bos\._exit\(|\bcurrent\(\)|RuntimeClosed|class \w+\(BaseException\)", text)
    ]
    assert offenders == []


def test_only_the_composition_root_launches_dbos() -> None:
    launching = [str(p.relative_to(SRC)) for p, text in _sources() if re.search(r"DBOS\.launch\(|DBOS\(config=", text)]
    assert launching == ["dsr/executor.py"]
