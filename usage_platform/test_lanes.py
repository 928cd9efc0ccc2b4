"""Splits the suite by test module into two parts of planned weight, so CI can run one part of
the PostgreSQL pass beside the other once the SQLite pass is done (`.ci/run`).

`--split=first:0.14` runs the modules outside the part that holds about 14 % of the suite's
seconds, `--split=second:0.14` runs that part. Both invocations collect the same modules and
weigh them from the same file, so each module runs in exactly one of them, whole (a module's
shared fixtures are built once). Weights are seconds per module from `.ci/module_seconds.json`,
written by a whole run with `--module-seconds-out .ci/module_seconds.json`; a module the file
does not know weighs DEFAULT_SECONDS (it still runs, in one part)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

WEIGHTS_FILE = Path(__file__).resolve().parent.parent / ".ci" / "module_seconds.json"
DEFAULT_SECONDS = 5.0
PARTS = ("first", "second")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lanes", "splitting the suite by module (CI)")
    group.addoption(
        "--split",
        default=None,
        metavar="PART:SHARE",
        help="run one part of the suite: 'second:0.14' is the modules holding ~14 %% of its seconds, "
        "'first:0.14' the rest",
    )
    group.addoption(
        "--module-seconds-out",
        default=None,
        metavar="PATH",
        help="write the seconds each test module took (setup, call and teardown) to PATH as JSON",
    )


def parse_split(value: str) -> tuple[str, float]:
    part, _, share = value.partition(":")
    try:
        fraction = float(share)
    except ValueError:
        fraction = -1.0
    if part not in PARTS or not 0.0 < fraction < 1.0:
        raise pytest.UsageError(f"--split takes first:SHARE or second:SHARE with 0 < SHARE < 1, not {value!r}")
    return part, fraction


def second_part(modules: list[str], weights: dict[str, float], share: float) -> set[str]:
    """The modules of the second part: heaviest first, each one that still fits within `share`
    of the total weight (ties by name, so every invocation picks the same)."""
    weight = {module: float(weights.get(module, DEFAULT_SECONDS)) for module in modules}
    budget = share * sum(weight.values())
    chosen: set[str] = set()
    taken = 0.0
    for module in sorted(modules, key=lambda name: (-weight[name], name)):
        if taken + weight[module] <= budget:
            chosen.add(module)
            taken += weight[module]
    return chosen


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    value = config.getoption("--split")
    if not value:
        return
    part, share = parse_split(value)
    weights = json.loads(WEIGHTS_FILE.read_text()) if WEIGHTS_FILE.exists() else {}
    second = second_part(sorted({_module_of(item) for item in items}), weights, share)
    keep, drop = [], []
    for item in items:
        (keep if (_module_of(item) in second) == (part == "second") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class _ModuleClock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid.split("::", 1)[0]] += report.duration

    def pytest_sessionfinish(self) -> None:
        ordered = {module: round(seconds, 1) for module, seconds in sorted(self.seconds.items())}
        Path(self.path).write_text(json.dumps(ordered, indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--module-seconds-out")
    if path:
        config.pluginmanager.register(_ModuleClock(path), "module-seconds")
