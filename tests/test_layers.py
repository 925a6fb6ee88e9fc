"""The package's shape: imports point one way, with no cycle, and loading the plugin does not load the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_memaslap"
# lower layers never import higher ones; plugin and cli are two faces at the top that never import each other
RANK = {"model": 0, "stats": 1, "protocol": 2, "memcached": 3, "engine": 4, "output": 5, "plugin": 6, "cli": 6}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of the package imported at module level (not under TYPE_CHECKING, not inside functions)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("pytest_memaslap"):
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("pytest_memaslap"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _runtime_imports(path) if m in modules and m != name} for name, path in modules.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def test_no_module_level_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in _graph().items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if here is None or there is None or here == there:
                continue
            if RANK[there] > RANK[here] or RANK[there] == RANK[here]:
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(sorted(wrong))


def test_shapes_never_reach_into_the_runner_that_composes_them():
    """A shape uses the runner through ``shapes.base.Run`` only; the runner picks a shape, never the reverse."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("pytest_memaslap.engine.shapes")
        for target in targets
        if target.startswith("pytest_memaslap.engine.shard")
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_every_module_says_its_job():
    missing = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert not missing, f"modules without a docstring: {missing}"


# what only a load, a report or a server needs; a suite without slap tests loads none of it
HEAVY = ("asyncio", "uvloop", "pymemcache", "tabulate", "plotly", "ssl")
HEAVY_OURS = ("pytest_memaslap.engine", "pytest_memaslap.output", "pytest_memaslap.stats", "pytest_memaslap.cli")


def test_loading_the_plugin_loads_neither_asyncio_uvloop_nor_the_engine():
    """A suite without slap tests pays (almost) nothing for the plugin: the engine loads when a load runs."""
    code = (
        "import sys, pytest_memaslap.plugin.hooks, pytest_memaslap;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m.startswith({HEAVY_OURS!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [("--co",), ()])
def test_a_session_without_slap_tests_does_not_import_the_engine(pytester, args):
    pytester.makeconftest(
        f"""
        import sys

        def pytest_unconfigure(config):
            heavy = sorted(m for m in sys.modules if m.startswith({HEAVY_OURS!r}) or m.split(".")[0] == "uvloop")
            print("HEAVY-MODULES", heavy)
        """
    )
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess(*args, "-s", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*HEAVY-MODULES []*"])
