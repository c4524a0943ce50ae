"""The package's layer rule (docs/architecture.md), checked on the import graph.

Every `import agfnet.X` / `from agfnet.X import ...` in agfnet/, at module level or inside
a function, must go to the same package or to a lower layer; and no two modules may
import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agfnet"

#: Low to high; a package may import from its own layer's package and from lower layers,
#: never from a higher layer or from another package of its own layer.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "fileio", "constants", "_lazy", "progress"}),
    frozenset({"data"}),
    frozenset({"layers"}),
    frozenset({"models"}),
    frozenset({"runtime"}),
    frozenset({"evaluation"}),
    frozenset({"explain"}),
    frozenset({"engine", "inference"}),
    frozenset({"workflows"}),
    frozenset({"benchmark", "app"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
#: The top-level package re-exports names from every layer, lazily: it is the facade.
FACADE = "agfnet"
#: Deprecated aliases at a public name's old place (`agfnet._lazy.moved_names`): they
#: import the new place lazily and by name, never with an import statement.
ALIASES = frozenset({"agfnet.engine.evaluate", "agfnet.engine.demo", "agfnet.engine.analyze"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """The agfnet modules `path` imports (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("agfnet")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.startswith("agfnet"):
                found.add(module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p, _module_name(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else FACADE
    for rank, packages in enumerate(LAYERS):
        if top in packages:
            return rank
    raise AssertionError(f"{module}: package {top!r} is in no layer of LAYERS")


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else FACADE


def test_every_package_has_a_layer() -> None:
    for module in _graph():
        if module != FACADE:
            _layer(module)


def test_no_import_goes_up_or_sideways() -> None:
    wrong = []
    for module, imported in _graph().items():
        if module == FACADE or module in ALIASES:
            continue
        for target in imported:
            if target == FACADE or _package(target) == _package(module):
                continue
            if _layer(target) >= _layer(module):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports from a higher (or the same) layer:\n" + "\n".join(sorted(wrong))


def test_the_facade_only_is_imported_for_its_version() -> None:
    """`import agfnet` inside the package is for `agfnet.__version__` only."""
    users = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == FACADE
                and not node.level
                and any(a.name != "__version__" for a in node.names)
            ):
                users.append(str(path))
    assert not users


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules of `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
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


def test_no_import_cycle_between_modules() -> None:
    # A package's __init__ re-exporting its own submodules is not a cycle of concerns;
    # the modules' imports of each other are what must form no loop.
    graph = {
        m: {t for t in targets if t != m and not _is_init_of(t, m)}
        for m, targets in _graph().items()
        if (PACKAGE.parent / Path(*m.split("."))).with_suffix(".py").is_file()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def _is_init_of(target: str, module: str) -> bool:
    return module.startswith(target + ".")


@pytest.mark.parametrize(
    ("graph", "cyclic"),
    [({"a": {"b"}, "b": {"a"}}, True), ({"a": {"b"}, "b": {"c"}, "c": set()}, False)],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], cyclic: bool) -> None:
    assert (_cycle(graph) is not None) is cyclic


def test_no_module_is_longer_than_500_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not long, long
