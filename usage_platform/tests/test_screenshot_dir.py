"""Browser tests keep their screenshots out of the git tree unless asked to refresh the
README's copies (conftest.screenshot_dir)."""

from pathlib import Path

from conftest import screenshot_dir

ROOT = Path(__file__).resolve().parents[2]


def test_screenshots_go_to_var_by_default(monkeypatch):
    monkeypatch.delenv("UPDATE_SCREENSHOTS", raising=False)
    assert Path(screenshot_dir()) == ROOT / "var" / "screenshots"
    assert "var/" in (ROOT / ".gitignore").read_text().split()


def test_update_screenshots_writes_the_committed_copies(monkeypatch):
    monkeypatch.setenv("UPDATE_SCREENSHOTS", "1")
    assert Path(screenshot_dir()) == ROOT / "docs" / "screenshots"
