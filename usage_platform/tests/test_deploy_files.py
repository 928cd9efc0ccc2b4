"""The image and compose files, checked as far as they can be without a Docker engine (CI
has none; `.ci/run` also runs `docker compose config -q`, or v1's `docker-compose`, where
Compose is installed): what goes into the build context, what the Dockerfile copies, what
each stage installs, and the order and health checks of the compose services."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "pytest-django", "pytest-timeout", "playwright", "pytest-playwright", "hypothesis", "ruff")
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make")


# --- .dockerignore ------------------------------------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(excludes, pattern) per line, Docker's syntax: `**` any depth, `*` within a name,
    `!` re-includes, a matched folder takes its contents with it; the last match wins."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        rules.append((excludes, re.compile(regex + "(?:/.*)?")))
    return rules


def in_build_context(path: str) -> bool:
    included = True
    for excludes, regex in _ignore_rules():
        if regex.fullmatch(path):
            included = not excludes
    return included


def test_dockerignore_keeps_secrets_local_state_and_tests_out_of_the_image():
    for path in (
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".git/HEAD",
        "var/cache/x.djcache",
        "var/heartbeat/worker",
        "db.sqlite3",
        "db.sqlite3-wal",
        "staticfiles/css/app.css",
        "telemetry/tests/test_ingest.py",
        "conftest.py",
        "bench/ingest.py",
        "requirements-dev.txt",
        "analytics/__pycache__/queries.cpython-311.pyc",
    ):
        assert not in_build_context(path), path
    for path in (
        "manage.py",
        "requirements.txt",
        "usage_platform/settings/__init__.py",
        "usage_platform/settings/base.py",
        "usage_platform/gunicorn.conf.py",
        "telemetry/management/commands/consume_events.py",
        "scripts/healthcheck.py",
        "templates/base.html",
        "static/css/app.css",
        ".env.example",
    ):
        assert in_build_context(path), path


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by stage."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line.strip())
    return stages


def test_dockerfile_copies_only_sources_that_exist_in_the_build_context():
    sources = []
    for stage in dockerfile_stages():
        for line in stage:
            words = shlex.split(line)
            if words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
                sources += [w for w in words[1:-1] if not w.startswith("--")]
            for mount in re.findall(r"--mount=(\S+)", line):
                options = dict(part.split("=", 1) for part in mount.split(","))
                if options.get("type") == "bind" and "from" not in options:
                    sources.append(options["source"])
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source == "." or in_build_context(source), f"{source} is excluded by .dockerignore"


def test_image_builds_wheels_in_a_builder_and_runs_slim_without_compilers_as_non_root():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: wheels are built in a builder stage"
    final = stages[-1]
    assert re.fullmatch(r"FROM python:3\.11-slim(-\w+)?", final[0])
    final_text = "\n".join(final)
    assert "--no-index" in final_text and "from=builder" in final_text
    installs = [line for line in final if "apt-get install" in line]
    assert not [name for line in installs for name in COMPILERS if re.search(rf"\s{re.escape(name)}(\s|$)", line)]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any("collectstatic" in line for line in final)
    command = next(line for line in reversed(final) if line.upper().startswith(("CMD ", "ENTRYPOINT ")))
    assert "gunicorn" in command and "usage_platform/gunicorn.conf.py" in command
    assert (ROOT / "usage_platform" / "gunicorn.conf.py").is_file()


def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_runtime_requirements_carry_no_test_tooling_and_both_files_are_pinned():
    runtime = _requirements("requirements.txt")
    names = {re.split(r"[\[=<>]", line)[0].lower() for line in runtime}
    assert not names & set(DEV_ONLY)
    dev = _requirements("requirements-dev.txt")
    assert dev[0] == "-r requirements.txt"
    for line in runtime + dev[1:]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[\w.]+", line), line
    dev_names = {re.split(r"[\[=]", line)[0].lower() for line in dev[1:]}
    assert set(DEV_ONLY) <= dev_names


# --- docker-compose.yml ---------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_migrates_once_before_the_app_processes_start():
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    app_services = [name for name, service in services.items() if service.get("image") == migrate["image"]]
    assert set(app_services) == {"migrate", "web", "worker", "beat", "consumer"}
    for name in app_services:
        if name == "migrate":
            continue
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_every_long_running_service_has_a_health_check():
    services = compose()["services"]
    for name, service in services.items():
        if name == "migrate":
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and not service["healthcheck"].get("disable"), name
        if service.get("image") == services["migrate"]["image"]:
            assert test[:3] == ["CMD", "python", "scripts/healthcheck.py"] and test[3] == name, name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_compose_redis_persists_the_ingestion_stream():
    redis = compose()["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], str) else " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_compose_env_file_is_the_form_compose_v1_reads():
    # `.ci/run` validates with Debian's docker-compose 1.29 where Compose v2 is missing; it
    # (and v2 before 2.24) takes `env_file` only as file names, not `path:`/`required:`.
    services = compose()["services"]
    for name, service in services.items():
        if service.get("image") == services["migrate"]["image"]:
            assert service["env_file"] == ".env", name
