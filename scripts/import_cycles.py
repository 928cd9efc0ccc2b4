"""Fails (exit 1) on any import cycle between the project's modules, printing each one.

`make lint` runs it beside import-linter's `acyclic_siblings` contract (pyproject.toml), which
checks the modules and sub-packages of each package against each other but not a package's
`__init__` against its own modules: `analytics/queries/__init__.py` importing `.summary`
while `summary` imports `analytics.queries` is a cycle only this check sees. It reads the
same graph import-linter does (grimp: every import statement, lazy imports inside functions
included) of the packages import-linter is given (`root_packages`).

    .venv/bin/python scripts/import_cycles.py
"""

import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def root_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["root_packages"]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle inside `component`, from its first module back to it (breadth-first, so the
    shortest)."""
    members = set(component)
    first = component[0]
    came_from: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & members):
                if successor == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), first]
                if successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {first}")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import_graph = grimp.build_graph(*root_packages(), cache_dir=None)
    graph = {module: set(import_graph.find_modules_directly_imported_by(module)) for module in import_graph.modules}
    components = strongly_connected(graph)
    for component in components:
        cycle = cycle_through(graph, component)
        print(f"Import cycle ({len(component)} modules take part):")
        for importer, imported in zip(cycle, cycle[1:], strict=False):
            lines = sorted(
                detail["line_number"]
                for detail in import_graph.get_import_details(importer=importer, imported=imported)
            )
            print(f"  {importer} -> {imported} (line {', '.join(map(str, lines))})")
    if components:
        print(f"{len(components)} import cycle(s): import from where a thing is defined, or move what both sides need.")
        return 1
    print("No import cycles.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
