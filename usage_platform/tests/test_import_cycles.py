"""scripts/import_cycles.py (run by `make lint`): the project has no import cycle, and the
check finds the kind import-linter's acyclic_siblings contract cannot see."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cycles_script():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "scripts" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_project_has_no_import_cycle(capsys):
    assert cycles_script().main() == 0, capsys.readouterr().out


def test_a_package_and_its_own_module_importing_each_other_is_a_cycle():
    script = cycles_script()
    graph = {
        "app.pages": {"app.pages.dashboard"},  # the package's __init__ imports its module
        "app.pages.dashboard": {"app.pages.common"},
        "app.pages.common": {"app.pages", "app.models"},  # …which imports the package back
        "app.models": set(),
        "app.a": {"app.b"},
        "app.b": {"app.a"},
    }
    components = script.strongly_connected(graph)
    assert components == [["app.a", "app.b"], ["app.pages", "app.pages.common", "app.pages.dashboard"]]
    assert script.cycle_through(graph, components[1]) == [
        "app.pages",
        "app.pages.dashboard",
        "app.pages.common",
        "app.pages",
    ]
