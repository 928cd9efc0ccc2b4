"""Runs usage_platform/settings/ afresh, apart from the settings Django has loaded: for the
container health checks (which must not import Django's apps or start Celery, as importing
the `usage_platform` package would) and for tests of what the settings make of the
environment. No Django import here."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SETTINGS_PACKAGE = Path(__file__).resolve().parent.parent / "usage_platform" / "settings"


def settings_execute(module_name: str) -> ModuleType:
    """The settings package executed now under `module_name` (a name Django does not use),
    its parts re-run rather than taken from an earlier execution."""
    for name in [n for n in sys.modules if n == module_name or n.startswith(f"{module_name}.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        module_name, SETTINGS_PACKAGE / "__init__.py", submodule_search_locations=[str(SETTINGS_PACKAGE)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The parts' relative imports (`from .base import …`) find their package here.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
