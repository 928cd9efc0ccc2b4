"""CI's split of the suite into two parts by module (usage_platform/test_lanes.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from usage_platform.test_lanes import DEFAULT_SECONDS, WEIGHTS_FILE, parse_split, second_part

ROOT = Path(__file__).resolve().parents[2]


def test_the_second_part_holds_at_most_its_share_heaviest_first():
    weights = {"a.py": 50.0, "b.py": 30.0, "c.py": 10.0, "d.py": 10.0}
    assert second_part(sorted(weights), weights, 0.3) == {"b.py"}
    assert second_part(sorted(weights), weights, 0.2) == {"c.py", "d.py"}
    assert second_part(sorted(weights), weights, 0.05) == set()


def test_a_module_the_weights_do_not_know_weighs_the_default():
    assert second_part(["new.py", "old.py"], {"old.py": 3 * DEFAULT_SECONDS}, 0.25) == {"new.py"}


@pytest.mark.parametrize("value", ["third:0.3", "first", "first:1", "second:0", "second:x"])
def test_a_wrong_split_is_a_usage_error(value):
    with pytest.raises(pytest.UsageError):
        parse_split(value)


def test_the_weights_file_names_modules_of_the_suite():
    weights = json.loads(WEIGHTS_FILE.read_text())
    assert weights and all(seconds >= 0 for seconds in weights.values())
    assert sum((ROOT / module).exists() for module in weights) >= 0.9 * len(weights)


def _collected(*args: str) -> set[str]:
    modules = ["usage_platform/tests/test_lanes.py", "usage_platform/tests/test_deploy_files.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *modules, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # addopts' -q and this one: one "path: number of tests" line per module.
    return {line for line in run.stdout.splitlines() if line.startswith("usage_platform/tests/")}


def test_the_two_parts_run_every_test_once():
    whole = _collected()
    first, second = _collected("--split=first:0.5"), _collected("--split=second:0.5")
    assert first and second
    assert first | second == whole and not first & second
