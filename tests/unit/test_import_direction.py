"""The house has no upward arrows and no cycles (docs/architecture.md: who may import whom).

Read from the source with ``ast``: every import counts, also those inside functions, so a lazy
import cannot hide an arrow. Cycles are checked between modules over imports made at import
time (module level, outside ``TYPE_CHECKING``), the ones that can fail at start-up.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

from tests.support.paths import REPO

PACKAGES = {
    "edgeinfer": REPO / "proto" / "edgeinfer",
    "kubeedge_twin": REPO / "kubeedge_twin",
    "kubeedge_sim": REPO / "kubeedge_sim",
    "edge_runtime": REPO / "edge_runtime",
    "device_sim": REPO / "device_sim",
    "cloud_trainer": REPO / "cloud_trainer",
    "mappers": REPO / "mappers",
    "bench": REPO / "bench",
}
# Contracts (edgeinfer, kubeedge_twin) at the bottom, programs above them, bench on top.
MAY_IMPORT = {
    "edgeinfer": set(),
    "kubeedge_twin": {"edgeinfer"},
    "kubeedge_sim": {"edgeinfer", "kubeedge_twin"},
    "edge_runtime": {"edgeinfer", "kubeedge_twin"},
    "device_sim": {"edgeinfer", "kubeedge_twin", "edge_runtime"},
    # push --backend local edits twins through the simulated cloud (kubeedge_sim.cloud).
    "cloud_trainer": {"edgeinfer", "kubeedge_twin", "kubeedge_sim"},
    "mappers": {"edgeinfer", "kubeedge_twin"},
    "bench": set(PACKAGES) - {"bench"},
}
# A program may use another's public names only (its package's __init__), never its modules.
PUBLIC_ONLY = {("device_sim", "edge_runtime")}


def modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    found = {}
    for path in sorted(root.rglob("*.py")):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")) or "peers" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports(path: Path, *, import_time_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST]
    if import_time_only:
        nodes = [
            n
            for n in tree.body
            if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        ]
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _reaches_inside(name: str) -> bool:
    """``pkg.module`` or deeper, not ``pkg`` or a name ``pkg`` exports."""
    top, _, rest = name.partition(".")
    inner = {p.name.removesuffix(".py") for p in PACKAGES[top].iterdir()}
    return bool(rest) and (rest.count(".") > 0 or rest in inner)


def test_no_package_imports_one_above_it_or_another_programs_internals() -> None:
    wrong = []
    for package in PACKAGES:
        for module, path in modules(package).items():
            for name in imports(path):
                top = name.split(".")[0]
                if top not in PACKAGES or top == package:
                    continue
                if top not in MAY_IMPORT[package]:
                    wrong.append(f"{module} imports {name}")
                elif (package, top) in PUBLIC_ONLY and _reaches_inside(name):
                    wrong.append(f"{module} imports {name} (only {top}'s public names)")
    assert wrong == []


def test_no_module_imports_itself_back_at_import_time() -> None:
    every = {m: p for package in PACKAGES for m, p in modules(package).items()}
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for module, path in every.items():
        for name in imports(path, import_time_only=True):
            while name and name not in every:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(f"{name}."):
                graph[module].add(name)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(every):
        if module not in state:
            visit(module, [module])
    assert cycles == []
