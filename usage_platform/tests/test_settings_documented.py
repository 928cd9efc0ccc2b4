"""Every knob is read in the settings package (from the environment) and documented in .env.example;
the code reads `settings.X`, never the environment or a `getattr(settings, …)` default that
nobody can see."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "telemetry", "analytics", "insights", "usage_platform")
SETTINGS = ROOT / "usage_platform" / "settings"
# Modules that read the environment by design: the settings themselves, gunicorn's config
# (read before Django), the tests' subprocess helpers and pytest plugin.
OWN_ENVIRONMENT = ("gunicorn.conf.py", "testing.py", "testing_processes.py", "pytest_plugin.py")
# Read by libraries or by processes that start before Django, not by the settings.
EXTERNAL = {
    "HF_HUB_OFFLINE": "huggingface_hub (the seeder's hub source)",
    "WEB_CONCURRENCY": "usage_platform/gunicorn.conf.py",
    "GUNICORN_TIMEOUT": "usage_platform/gunicorn.conf.py",
    "GUNICORN_MAX_REQUESTS": "usage_platform/gunicorn.conf.py",
    "GUNICORN_CMD_ARGS": "gunicorn itself",
    "PORT": "usage_platform/gunicorn.conf.py",
}


def settings_variables() -> set[str]:
    text = "\n".join(path.read_text() for path in sorted(SETTINGS.glob("*.py")))
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", text))


def documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def test_every_setting_read_from_the_environment_is_documented():
    assert settings_variables() - documented_variables() == set()


def test_every_documented_variable_is_read_somewhere():
    assert documented_variables() - settings_variables() - set(EXTERNAL) == set()


def test_application_code_reads_settings_not_the_environment():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            own = path.name in OWN_ENVIRONMENT or path.parent == SETTINGS
            if "tests" in path.parts or "migrations" in path.parts or own:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                # DJANGO_SETTINGS_MODULE is how a process finds the settings in the first place.
                if "DJANGO_SETTINGS_MODULE" in line:
                    continue
                if re.search(r"getattr\(settings,|os\.environ|os\.getenv", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
