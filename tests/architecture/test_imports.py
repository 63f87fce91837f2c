"""The import graph of our own modules, read from their source (AST, every import: inside
functions and under TYPE_CHECKING too, as import-linter counts them): no cycle inside a
service or a shared package, between its modules or between the parts of any package
(a subpackage counts with everything in it, as import-linter's acyclic_siblings does),
no service importing another, and in results and the engine no import of ours hidden
in a function."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "results", "engine", "notifier")


def _modules() -> dict[str, Path]:
    mods = {}
    for top in ("services", "domain", "libs", "cli"):
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT)
            if rel.parts[:2] == ("libs", "gen") or "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _ours(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module of ours, whether the import is inside a function) of every import in `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([child.module] if child.module else []))
                subs = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in MODULES]
                names = subs if len(subs) == len(child.names) else [base, *subs]
            for name in names:
                target = _ours(name)
                if target and target != module:
                    out.append((target, nested))
            visit(child, nested)

    visit(ast.parse(path.read_text()), False)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _service(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 2 and parts[1] in SERVICES else None


def _cycles(nodes: list[str], edges: dict[str, list[str]] | None = None) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan); modules and their imports by default."""
    inside = set(nodes)
    if edges is None:
        edges = {m: sorted({t for t, _ in GRAPH[m] if t in inside}) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in nodes:
        if v not in index:
            connect(v)
    return groups


def test_the_graph_sees_the_services() -> None:
    assert {"services.results.jobs", "services.engine.worker", "services.results.kinds.registry"} <= set(GRAPH)
    assert ("services.results.jobs", False) in GRAPH["services.results.servicer"]


def test_no_import_cycle_inside_a_service_or_the_shared_packages() -> None:
    for area in [f"services.{s}" for s in SERVICES] + ["domain", "libs", "cli"]:
        nodes = sorted(m for m in MODULES if m == area or m.startswith(area + "."))
        assert _cycles(nodes) == [], area


def test_no_cycle_between_the_parts_of_a_package() -> None:
    packages = sorted({m.rpartition(".")[0] for m in MODULES if "." in m} & set(MODULES))
    for package in packages:
        depth = package.count(".") + 1

        def part(module: str, package: str = package, depth: int = depth) -> str | None:
            inside = module.startswith(package + ".")
            return ".".join(module.split(".")[: depth + 1]) if inside else None

        parts = sorted({p for m in MODULES if (p := part(m))})
        edges: dict[str, set[str]] = {p: set() for p in parts}
        for m, imports in GRAPH.items():
            if (a := part(m)) is not None:
                edges[a].update(b for t, _ in imports if (b := part(t)) is not None and b != a)
        assert _cycles(parts, {p: sorted(e) for p, e in edges.items()}) == [], package


def test_no_service_imports_another() -> None:
    crossing = sorted(
        (m, t) for m, imports in GRAPH.items() for t, _ in imports
        if _service(m) and _service(t) and _service(m) != _service(t)
    )
    assert crossing == []


def test_no_import_of_ours_inside_a_function() -> None:
    hidden = sorted(
        (m, t) for m, imports in GRAPH.items() for t, nested in imports if nested and _service(m) in ("results", "engine")
    )
    assert hidden == []
