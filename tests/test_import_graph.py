"""The import graph of lcrag, read from the source with ``ast`` (nothing is imported):
no cycle among modules, none among the children of any package (subpackages and the
modules beside them, at every level), and the layering of the top-level packages --
``core`` depends on nothing else, ``readers`` and ``retrievers`` only on ``core``, and
only ``flows`` and the entry points (``app``: CLI and service) may import ``lcrag.flows``, and nothing below ``app`` imports it.
Imports inside functions count: they run too,
just later. The cycle finder itself is tested on hand-made graphs."""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the import name it installs under (pyproject's package-dir).
FOLDERS = {
    "core": "lcrag.core",
    "pipeline": "lcrag.pipeline",
    "readers": "lcrag.readers",
    "retrievers": "lcrag.retrievers",
    "flows": "lcrag.flows",
    "app": "lcrag.app",
    "testing": "lcrag.testing",
}
# lcrag names that are not Python modules of the tree but may be named (package data).
DATA_PACKAGES = {"lcrag", "lcrag.configs"}
# Top-level package -> the top-level packages its modules may import.
ALLOWED = {
    "lcrag.core": {"lcrag.core"},
    "lcrag.readers": {"lcrag.core", "lcrag.readers"},
    "lcrag.retrievers": {"lcrag.core", "lcrag.retrievers"},
    "lcrag.pipeline": {"lcrag.core", "lcrag.readers", "lcrag.retrievers", "lcrag.pipeline"},
    "lcrag.flows": {"lcrag.core", "lcrag.readers", "lcrag.retrievers", "lcrag.pipeline", "lcrag.flows"},
    "lcrag.app": {"lcrag.core", "lcrag.readers", "lcrag.retrievers", "lcrag.pipeline", "lcrag.flows", "lcrag.app"},
    # what plugin authors test with; no runtime package may import it (none lists it)
    "lcrag.testing": {"lcrag.core", "lcrag.readers", "lcrag.retrievers", "lcrag.pipeline", "lcrag.flows", "lcrag.app",
                      "lcrag.testing"},
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a file of the tree)
    where: str  # path:line of the import statement

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where})"


@dataclass
class Graph:
    modules: dict[str, Module]
    imports: list[Import]
    unresolved: list[str]  # lcrag.* names that match no module of the tree
    old_names: list[str]  # imports of the pre-lcrag top-level names (core, pipeline, ...)

    def edges(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports:
            graph[imp.source].add(imp.target)
        return graph

    def evidence(self, source: str, target: str) -> str:
        return next(str(i) for i in self.imports if i.source == source and i.target == target)


def collect_modules(root: Path, folders: dict[str, str]) -> dict[str, Module]:
    modules = {}
    for folder, package in folders.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join((package, *(parts[:-1] if is_package else parts)))
            modules[name] = Module(name, path, is_package)
    return modules


def imported_names(module: Module) -> list[tuple[str, tuple[str, ...], int]]:
    """(module named, names imported from it, line) for every import statement anywhere in
    the file (module level, functions, classes, ``if TYPE_CHECKING``) and every
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..core import y
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, tuple(alias.name for alias in node.names), node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, (), node.lineno))
    return found


def build_graph(root: Path, folders: dict[str, str]) -> Graph:
    modules = collect_modules(root, folders)
    old_tops = set(folders) | {"configs"}
    imports, unresolved, old_names = [], [], []
    for module in modules.values():
        for name, names, line in imported_names(module):
            where = f"{module.path.relative_to(root)}:{line}"
            top = name.partition(".")[0]
            if top in old_tops:
                old_names.append(f"{module.name} imports {name!r} ({where})")
            if top != "lcrag":
                continue
            if name not in modules:
                if name not in DATA_PACKAGES:
                    unresolved.append(f"{module.name} imports {name!r} ({where})")
                continue
            # from PACKAGE import sub: an import of the submodule sub (and of PACKAGE's
            # __init__, which runs first -- the edge PACKAGE counts only when a name of it is used).
            subs = [f"{name}.{n}" for n in names if f"{name}.{n}" in modules]
            targets = subs + ([name] if len(subs) < len(names) or not names else [])
            imports.extend(Import(module.name, t, where) for t in targets if t != module.name)
    return Graph(modules, imports, unresolved, old_names)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a path [a, b, ..., a]:
    the shortest cycle through the component's smallest node. Deterministic; nodes that
    appear only as targets are allowed."""
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    succ = {n: sorted(graph.get(n, ())) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    for start in nodes:  # Tarjan, iterative (no recursion limit on deep graphs)
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(succ[node]):
                work.append((node, i + 1))
                nxt = succ[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    cycles = []
    for component in sorted(components):
        head = component[0]
        if len(component) == 1 and head not in succ[head]:
            continue
        members = set(component)
        previous: dict[str, str] = {}
        queue = deque([head])
        while queue:  # BFS from head back to head, inside the component
            node = queue.popleft()
            if head in succ[node]:
                path = [head]
                while node != head:
                    path.append(node)
                    node = previous[node]
                cycles.append([head, *reversed(path[1:]), head])
                break
            for nxt in succ[node]:
                if nxt in members and nxt not in previous and nxt != head:
                    previous[nxt] = node
                    queue.append(nxt)
    return cycles


def child_of(package: str, name: str) -> str | None:
    """The child of ``package`` (subpackage or module) that holds module ``name``, if any."""
    prefix = package + "."
    return prefix + name[len(prefix):].split(".")[0] if name.startswith(prefix) else None


def level_graphs(graph: Graph) -> dict[str, dict[str, set[str]]]:
    """For every package P (the namespace ``lcrag`` too): the graph among P's children
    (subpackages and modules), each child standing for everything under it. P's own
    ``__init__`` belongs to no child, so a package importing its submodules is no cycle."""
    packages = {"lcrag"} | {m.name for m in graph.modules.values() if m.is_package}
    levels: dict[str, dict[str, set[str]]] = {}
    for package in sorted(packages):
        edges: dict[str, set[str]] = {}
        for name in graph.modules:
            if (c := child_of(package, name)) is not None:
                edges.setdefault(c, set())
        for imp in graph.imports:
            a, b = child_of(package, imp.source), child_of(package, imp.target)
            if a is not None and b is not None and a != b:
                edges[a].add(b)
        levels[package] = edges
    return levels


def describe(cycle: list[str], explain) -> str:
    steps = "\n".join(f"    {explain(a, b)}" for a, b in pairwise(cycle))
    return f"  {' -> '.join(cycle)}\n{steps}"


@pytest.fixture(scope="module")
def tree() -> Graph:
    return build_graph(ROOT, FOLDERS)


def test_the_tree_is_parsed(tree):
    # guards against a vacuous pass: the parser sees the modules and their imports
    assert {"lcrag.core.paths", "lcrag.app.cli.app", "lcrag.pipeline.strategies", "lcrag.flows"} <= set(tree.modules)
    assert Import("lcrag.app.cli.app", "lcrag.core.paths", "") in {
        Import(i.source, i.target, "") for i in tree.imports
    }
    assert len(tree.imports) > 100


def test_every_lcrag_import_names_a_module_of_the_tree(tree):
    assert not tree.unresolved, "imports of lcrag names that are no module of the tree:\n  " + "\n  ".join(tree.unresolved)


def test_no_module_imports_the_old_top_level_names(tree):
    # `import pipeline` works from the checkout's root only; installed, it is lcrag.pipeline
    assert not tree.old_names, "imports of pre-lcrag names:\n  " + "\n  ".join(tree.old_names)


def test_no_cycle_among_modules(tree):
    cycles = find_cycles(tree.edges())
    assert not cycles, "import cycles among modules:\n" + "\n".join(describe(c, tree.evidence) for c in cycles)


def test_no_cycle_among_the_children_of_any_package(tree):
    def explain(a: str, b: str) -> str:
        first = next(i for i in tree.imports if (i.source == a or i.source.startswith(a + "."))
                     and (i.target == b or i.target.startswith(b + ".")))
        return f"{a} -> {b}, e.g. {first}"

    found = [
        f"in {package}:\n" + describe(cycle, explain)
        for package, edges in level_graphs(tree).items()
        for cycle in find_cycles(edges)
    ]
    assert not found, "import cycles among subpackages/modules of a package:\n" + "\n".join(found)


def test_layering_of_the_top_level_packages(tree):
    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    broken = [str(i) for i in tree.imports if top(i.target) not in ALLOWED[top(i.source)]]
    assert not broken, (
        "layering: core imports no other lcrag package; readers and retrievers only lcrag.core; "
        "only lcrag.flows and the entry points in lcrag.app import lcrag.flows; nothing imports lcrag.app. Offending imports:\n  "
        + "\n  ".join(broken)
    )


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({}, []),
        ({"a": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, []),  # diamond
        ({"a": {"a"}}, [["a", "a"]]),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a", "z"}}, [["a", "b", "c", "a"]]),  # tail in and out
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}, "e": {"a", "c"}}, [["a", "b", "a"], ["c", "d", "c"]]),
        # one component, several cycles through a: the shortest is reported
        ({"a": {"b", "e"}, "b": {"c"}, "c": {"d"}, "d": {"a"}, "e": {"a"}}, [["a", "e", "a"]]),
        # a node only as a target; the cycle does not go through the smallest node of the graph
        ({"a": {"q"}, "p": {"q", "r"}, "q": {"p"}}, [["p", "q", "p"]]),
        ({"b": {"c"}, "c": {"d"}, "d": {"b"}}, [["b", "c", "d", "b"]]),
    ],
)
def test_find_cycles_on_hand_made_graphs(graph, expected):
    assert find_cycles(graph) == expected


def test_a_long_chain_is_no_recursion_problem():
    chain = {f"n{i:05d}": {f"n{i + 1:05d}"} for i in range(5000)}
    assert find_cycles(chain) == []
    chain["n05000"] = {"n00000"}
    (cycle,) = find_cycles(chain)
    assert len(cycle) == 5002 and cycle[0] == cycle[-1] == "n00000"


def test_build_graph_resolves_imports_of_a_hand_made_tree(tmp_path):
    files = {
        "core/__init__.py": "",
        "core/a.py": "import lcrag.core.b\n",
        "core/b.py": "def f():\n    from lcrag.pipeline import x  # inside a function: counts\n",
        "pipeline/__init__.py": "from .x import thing\nfrom lcrag.pipeline import sub\n",
        "pipeline/x.py": "from ..core import a\nfrom lcrag.pipeline.sub.deep import name\nimport lcrag.nowhere\n",
        "pipeline/sub/__init__.py": "",
        "pipeline/sub/deep.py": "import importlib\nimportlib.import_module('lcrag.core.a')\nimport core.b\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = build_graph(tmp_path, {"core": "lcrag.core", "pipeline": "lcrag.pipeline"})
    assert graph.edges() == {
        "lcrag.core": set(),
        "lcrag.core.a": {"lcrag.core.b"},
        "lcrag.core.b": {"lcrag.pipeline.x"},
        "lcrag.pipeline": {"lcrag.pipeline.x", "lcrag.pipeline.sub"},
        "lcrag.pipeline.x": {"lcrag.core.a", "lcrag.pipeline.sub.deep"},
        "lcrag.pipeline.sub": set(),
        "lcrag.pipeline.sub.deep": {"lcrag.core.a"},
    }
    assert graph.unresolved == ["lcrag.pipeline.x imports 'lcrag.nowhere' (pipeline/x.py:3)"]
    assert graph.old_names == ["lcrag.pipeline.sub.deep imports 'core.b' (pipeline/sub/deep.py:3)"]
    assert find_cycles(graph.edges()) == [["lcrag.core.a", "lcrag.core.b", "lcrag.pipeline.x", "lcrag.core.a"]]
    levels = level_graphs(graph)
    # top level: core <-> pipeline; inside pipeline, the package's own __init__ is no node
    assert find_cycles(levels["lcrag"]) == [["lcrag.core", "lcrag.pipeline", "lcrag.core"]]
    assert levels["lcrag.pipeline"] == {"lcrag.pipeline.x": {"lcrag.pipeline.sub"}, "lcrag.pipeline.sub": set()}
    assert levels["lcrag.pipeline.sub"] == {"lcrag.pipeline.sub.deep": set()}
