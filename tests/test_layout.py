"""The package's layout: imports inside ``archlab/`` flow one way, with no cycle.

Every ``import``/``from ... import`` statement counts, at module level or inside a function
(a function-level import that closes a loop is a cycle all the same: it only moves the
failure to run time), and so does an import under ``if TYPE_CHECKING:``. The edge goes to the
most specific module named: ``from archlab.report import count`` is an edge to
``archlab.report.count``. The implicit import of a parent package (importing
``archlab.trace.run`` runs ``archlab/trace/__init__.py`` first) is not an edge: the
package ``__init__`` files hold no code that imports back (``archlab/__init__.py`` resolves its
public names lazily, in ``__getattr__``).
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent / "archlab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an import names: the longest prefix of ``name`` that is a module of archlab."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if not target.startswith("archlab"):
                    continue
                found = _resolve(target, modules)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


def test_the_checker_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_archlab():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


# The pipeline, lowest layer first: a module may import its own layer and the layers below it, never
# one above. The base holds the vocabulary every layer shares (errors, units, specs and inputs, the
# user-code guard, the cache folder); api/ joins a meta analysis with a measurement (archlab.Model,
# archlab.count/memory/analyze/compare, the report's data) and sits above report/ because its
# objects render themselves in a notebook (Model._repr_html_, Report._repr_markdown_).
LAYERS = (
    ("base", ("archlab", "archlab.errors", "archlab.units", "archlab.spec", "archlab.user_code", "archlab.cache")),
    ("models", ("archlab.models",)),
    ("trace", ("archlab.trace",)),
    ("analysis", ("archlab.analysis",)),
    ("measure", ("archlab.measure",)),
    ("verify", ("archlab.verify",)),
    ("report", ("archlab.report",)),
    ("api", ("archlab.api",)),
    ("cli", ("archlab.cli", "archlab.__main__")),
)


def layer_of(module: str) -> int:
    """The rank of the layer a module belongs to (its longest matching prefix)."""
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} is in no layer of LAYERS"
    return rank


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_imports_flow_one_way():
    """No module imports a layer above its own: analysis never imports measure or verify, measure
    never imports verify, nothing below api/ imports it."""
    wrong = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
                   for m, targets in import_graph().items() for t in targets if layer_of(t) > layer_of(m))
    assert wrong == []


def test_the_checker_finds_an_upward_edge():
    assert layer_of("archlab.analysis.count") < layer_of("archlab.measure.latency")
    assert layer_of("archlab.spec") == 0 and layer_of("archlab.cli.count") == len(LAYERS) - 1
    assert layer_of("archlab.trace.run") < layer_of("archlab.analysis.costs")


def private_imports() -> list[str]:
    """``from archlab.x import _name`` anywhere in archlab/ or tests/, where ``_name`` is not a module:
    a module's underscore names are its own."""
    modules = _modules()
    found = []
    paths = [*sorted(ROOT.rglob("*.py")), *sorted((ROOT.parent / "tests").glob("*.py"))]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("archlab"):
                for alias in node.names:
                    if alias.name.startswith("_") and f"{node.module}.{alias.name}" not in modules \
                            and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(ROOT.parent)}: {node.module}.{alias.name}")
    return found


def test_no_private_name_is_imported_across_modules():
    assert private_imports() == []
