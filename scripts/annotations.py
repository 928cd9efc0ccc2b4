"""How many of the platform's functions are fully annotated (issue 12's measure).

Counts every `def` (methods and nested functions included) in the application packages,
leaving out tests, migrations and the test helpers' conftest files. A function counts as
annotated when it has a return annotation and every parameter but `self`/`cls` has one.

    .venv/bin/python scripts/annotations.py          # totals and one line per package
    .venv/bin/python scripts/annotations.py --files  # and the files with unannotated functions
"""

import argparse
import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "tenants", "telemetry", "analytics", "insights", "usage_platform")
SKIPPED_PARTS = {"tests", "migrations"}


def _fully_annotated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [p for p in (args.vararg, args.kwarg) if p is not None]
    params = [p for p in params if p.arg not in ("self", "cls")]
    return node.returns is not None and all(p.annotation is not None for p in params)


def count(path: Path) -> tuple[int, int]:
    """(functions, fully annotated functions) of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return len(functions), sum(_fully_annotated(f) for f in functions)


def modules(package: str) -> list[Path]:
    return sorted(
        p
        for p in (ROOT / package).rglob("*.py")
        if not SKIPPED_PARTS & set(p.relative_to(ROOT).parts) and p.name != "conftest.py"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", action="store_true", help="list the files with unannotated functions")
    options = parser.parse_args()
    totals: Counter[str] = Counter()
    for package in PACKAGES:
        functions = annotated = 0
        for path in modules(package):
            n, done = count(path)
            functions, annotated = functions + n, annotated + done
            if options.files and done < n:
                print(f"    {path.relative_to(ROOT)}: {done}/{n}")
        print(f"{package}: {annotated}/{functions}")
        totals.update(functions=functions, annotated=annotated)
    share = totals["annotated"] / totals["functions"] * 100 if totals["functions"] else 0.0
    print(f"total: {totals['annotated']} of {totals['functions']} functions fully annotated ({share:.0f} %)")


if __name__ == "__main__":
    main()
