"""The package's shape: imports point down the stack of stages, never in a circle; modules stay small.

Read with ``ast`` (nothing is imported): every import counts, lazy ones inside functions and ``TYPE_CHECKING``
blocks too.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "matcher"
# The stack, bottom first: a module may import from its own subpackage and from layers below its own.
LAYERS = [("errors",), ("inputs",), ("features",), ("index",), ("cascade",), ("building", "scan"),
          ("report", "evaluation", "service"), ("api",), ("cli",), ("__init__",)]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
MAX_LINES = 400
TOP_LEVEL_MODULES = {"__init__.py", "api.py", "errors.py"}  # the CLI is the `cli` subpackage


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The matcher modules ``name`` imports (a package's ``__init__`` where a name is not a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "matcher"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "matcher":
                continue
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def stage(name: str) -> str:
    """The subpackage (or top-level module) a module belongs to: matcher.index.store -> index."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_package():
    assert {"matcher.api", "matcher.cascade.run", "matcher.index.version", "matcher.inputs.images"} <= set(MODULES)
    assert "matcher.features.embedder" in GRAPH["matcher.cascade.run"] | GRAPH["matcher.cascade.matcher"] or \
        "matcher.features" in GRAPH["matcher.cascade.run"]


def test_no_import_cycle_between_modules():
    assert cycles(GRAPH) == []


def test_no_import_cycle_between_subpackages():
    packages: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        packages.setdefault(stage(name), set()).update(stage(t) for t in targets if stage(t) != stage(name))
    assert cycles(packages) == []


def test_imports_point_down_the_stack():
    upward = [f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
              if stage(target) != stage(name) and LEVEL[stage(target)] >= LEVEL[stage(name)]]
    assert upward == []


def test_every_subpackage_has_a_place_in_the_stack():
    assert {stage(name) for name in MODULES} <= set(LEVEL)


def test_modules_stay_small_and_the_top_level_holds_three():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
    assert {p.name for p in PACKAGE.glob("*.py")} == TOP_LEVEL_MODULES


@pytest.mark.parametrize("bad, expected", [({"a": {"b"}, "b": {"a"}}, [["a", "b"]]), ({"a": {"b"}, "b": set()}, [])])
def test_the_cycle_finder_finds_cycles(bad, expected):
    assert cycles(bad) == expected
