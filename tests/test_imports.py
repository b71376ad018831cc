"""The package's imports run one way: its import graph has no cycle.

Every module under `eqxpurify/` is parsed (not imported), and each relative
import is an edge, at the top of a module or inside a function alike: an import
deferred into a function still ties the two modules together, it only hides the
cycle from the interpreter.
"""

import ast
import pathlib

import eqxpurify

PACKAGE = pathlib.Path(eqxpurify.__file__).parent

# The imports allowed inside a function, each with its reason. An edge listed here
# is left out of the cycle search; every other internal import is at module level.
DEFERRED = {
    ("eqxpurify._param", "eqxpurify._priors"): (
        "`ep.Param()` without a prior gets `ep.Normal(0, 1)`, and `_priors` builds "
        "its priors from hyperparameters that may themselves be Params (a "
        "hierarchical prior), so it imports `_param`."
    ),
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(
    name: str, source: str, is_package: bool, modules: set[str]
) -> list[tuple[str, int, bool]]:
    """`(module, line, deferred)` for each import of a package module by `name`."""
    tree = ast.parse(source)
    top = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            top.update(id(n) for n in ast.walk(node) if n is not node)
    here = name.split(".") if is_package else name.split(".")[:-1]
    root = name.split(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names]
            targets = [m for m in subs if m in modules] or [module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target == root or target.startswith(root + "."):
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    found.append((target, node.lineno, id(node) in top))
    return found


def _graph() -> dict[str, dict[str, list[tuple[int, bool]]]]:
    modules = _modules()
    graph: dict[str, dict[str, list[tuple[int, bool]]]] = {m: {} for m in modules}
    for name, path in modules.items():
        found = _imports(
            name, path.read_text(), path.name == "__init__.py", set(modules)
        )
        for target, line, deferred in found:
            graph[name].setdefault(target, []).append((line, deferred))
    return graph


def _cycle(graph: dict[str, dict[str, list[tuple[int, bool]]]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None


def _describe(cycle: list[str], graph: dict) -> str:
    steps = [cycle[0]]
    for a, b in zip(cycle, cycle[1:]):
        where = ", ".join(
            f"line {line}" + (" in a function" if deferred else "")
            for line, deferred in graph[a][b]
        )
        steps.append(f"-> {b} ({a.rsplit('.', 1)[-1]}.py {where})")
    return " ".join(steps)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    for (a, b), reason in DEFERRED.items():
        assert reason
        graph[a].pop(b, None)
    cycle = _cycle(graph)
    assert cycle is None, (
        f"The modules of {PACKAGE} import each other in a cycle: "
        f"{_describe(cycle, graph)}. Move the shared code below both, or let the "
        "lower module declare what it needs (a trait its kinds set)."
    )


def test_the_only_deferred_internal_import_is_the_documented_one():
    graph = _graph()
    deferred = {
        (a, b): [line for line, d in uses if d]
        for a, targets in graph.items()
        for b, uses in targets.items()
        if any(d for _, d in uses)
    }
    undocumented = dict(deferred)
    for edge in DEFERRED:
        undocumented.pop(edge, None)
    assert not undocumented, (
        f"Imports of package modules inside functions in {PACKAGE}, not in "
        f"`DEFERRED` with a reason: {undocumented}. Import at module level."
    )
    for (a, b), reason in DEFERRED.items():
        uses = graph[a].get(b, [])
        assert uses, f"`DEFERRED` lists {a} -> {b}, which is gone: remove it."
        assert all(d for _, d in uses), (
            f"{a} imports {b} at module level, which the deferred import in a "
            f"function was for ({reason}): that is a cycle at import time."
        )


def test_the_graph_reader_sees_every_kind_of_internal_import():
    modules = {"pkg", "pkg._a", "pkg._b", "pkg._c", "pkg.sub", "pkg.sub._d"}
    source = (
        "import numpy as np\n"
        "from ._b import x\n"
        "from . import _c\n"
        "import pkg.sub._d\n"
        "def f():\n"
        "    from .sub import _d\n"
        "    return lambda: __import__('os')\n"
    )
    found = _imports("pkg._a", source, False, modules)
    assert found == [
        ("pkg._b", 2, False),
        ("pkg._c", 3, False),
        ("pkg.sub._d", 4, False),
        ("pkg.sub._d", 6, True),
    ]
    up = _imports("pkg.sub._d", "from .._a import y\n", False, modules)
    assert up == [("pkg._a", 1, False)]
    cycle = _cycle({"a": {"b": [(2, True)]}, "b": {"a": [(1, False)]}})
    assert cycle == ["a", "b", "a"]
    assert _cycle({"a": {"b": [(1, False)]}, "b": {}}) is None
