"""No import circles in engine/ or app/ (DESIGN.md "Layout"), function-level imports included.

The graph is built from the source (ast), so a circle hidden inside a function, behind a PEP 562
lazy re-export or in importlib.import_module("engine.x") counts too; TYPE_CHECKING imports never
run and do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _lazy_exports(mods: dict[str, Path]) -> dict[tuple[str, str], str]:
    """A package's {name: "module"} map of PEP 562 re-exports: (package, name) -> module."""
    lazy = {}
    for name, path in mods.items():
        if path.name == "__init__.py":
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict):
                    for k, v in zip(node.keys, node.values, strict=True):
                        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                            if v.value in mods:
                                lazy[(name, k.value)] = v.value
    return lazy


def _imports(name: str, path: Path, mods: dict[str, Path], lazy: dict) -> set[str]:
    source = path.read_text()
    dynamic = "import_module" in source
    found: set[str] = set()

    def resolve(mod: str) -> str | None:
        while mod and mod not in mods:
            mod = mod.rpartition(".")[0]
        return mod or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(m for a in node.names if (m := resolve(a.name)))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = f"{base}.{mod}" if mod else base
            for a in node.names:
                sub = f"{mod}.{a.name}"
                m = sub if sub in mods else lazy.get((mod, a.name)) or resolve(mod)
                if m:
                    found.add(m)
        elif dynamic and isinstance(node, ast.Constant) and node.value in mods:
            found.add(node.value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    found.discard(name)
    return found


def import_cycles() -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    mods = {**_modules("engine"), **_modules("app")}
    lazy = _lazy_exports(mods)
    graph = {m: _imports(m, p, mods, lazy) for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[set[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = {stack.pop()}
            while v not in comp:
                comp.add(stack.pop())
            if len(comp) > 1:
                cycles.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def test_no_import_cycles():
    assert [sorted(c) for c in import_cycles()] == []


def test_the_graph_sees_function_level_imports():
    # engine.cli.main imports chat_conversation inside cmd_chat only.
    mods = _modules("engine")
    edges = _imports("engine.cli.main", mods["engine.cli.main"], mods, _lazy_exports(mods))
    assert "engine.cli.chat_conversation" in edges
