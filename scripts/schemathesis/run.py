"""A bounded schemathesis run over every operation of the API, against a real server.

    .venv/bin/python scripts/schemathesis/run.py [--max-examples N] [--seed S] [--workers W] [--keep]

It migrates and seeds a throw-away SQLite database in a temp dir (`seed.py`), starts gunicorn
on a free port with that database and no Redis, and runs `schemathesis run` on
`/api/schema/` with every check (`schemathesis.toml` says which statuses count as what),
as the seeded admin (JWT) and, for `events/*`, with an ingestion key (`hooks.py`). It fails
when schemathesis reports any failure, when fewer than `--min-cases` test cases ran, or
when the server logged a traceback. `.ci/run` calls it; the README's CI section explains it.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer {url} within {timeout:.0f} s")


def environment(tmp: Path) -> dict:
    """The server's settings: embedded mode (SQLite, file cache, filesystem broker) in `tmp`."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "CACHE_DIR": str(tmp / "cache"),
        "CELERY_BROKER_DIR": str(tmp / "broker"),
        "INGEST_MODE": "direct",
        "DEBUG": "false",
        "SECRET_KEY": os.urandom(32).hex(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HF_HUB_OFFLINE": "1",
        "GEMINI_API_KEY": "",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        # The seeded webhook points at a closed local port; nothing is delivered during the run.
        "WEBHOOK_ALLOW_PRIVATE": "true",
        # The login/register limits are real and documented (429), but at their production
        # values the fuzzer would spend most of those operations' cases on them instead of on
        # their input handling, and its failed logins from 127.0.0.1 would lock out the run's
        # own (hooks.py logs in as the admin). 0 turns the failed-login limits off.
        "AUTH_THROTTLE_RATE": "100000/min",
        "LOGIN_ACCOUNT_FAILURES": "0",
        "LOGIN_ADDRESS_FAILURES": "0",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for folder in ("queue", "processed"):
        (tmp / "broker" / folder).mkdir(parents=True, exist_ok=True)
    return env


def server_tracebacks(log: Path) -> list[str]:
    if not log.exists():
        return []
    text = log.read_text(errors="replace")
    return [chunk for chunk in text.split("\n\n") if "Traceback (most recent call last)" in chunk]


def cases_run(report: Path) -> int:
    """Test cases schemathesis sent, from its NDJSON event stream."""
    total = 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished:
            total += len(finished.get("recorder", {}).get("cases", {}))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=40, help="fuzzing cases per operation and phase")
    parser.add_argument("--seed", type=int, default=20261130)
    # One worker: on CPython 3.11 before 3.11.8, hypothesis parsing lambda sources with `ast` in two
    # threads at once can fail with "AST constructor recursion depth mismatch" (CPython
    # gh-106905), a runtime error of the tool, not of the API, that once turned CI red.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--min-cases", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, server log, reports)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="up-schemathesis-"))
    env = environment(tmp)
    started = time.monotonic()
    seeded = subprocess.run(
        [sys.executable, str(HERE / "seed.py")], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if seeded.returncode != 0:
        print(seeded.stdout, seeded.stderr, sep="\n")
        raise SystemExit("seeding failed")
    credentials = json.loads(seeded.stdout.strip().splitlines()[-1])
    print(f"== seeded {tmp} in {time.monotonic() - started:.1f} s")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "usage_platform.wsgi",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "2",
            "--timeout", "60",
            "--error-logfile", str(log),
            "--capture-output",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    report = tmp / "events.ndjson"
    try:
        wait_until_up(f"{base_url}/health", server)
        run_env = {
            **env,
            "PYTHONPATH": str(HERE),
            "SCHEMATHESIS_HOOKS": "hooks",
            "UP_BASE_URL": base_url,
            "UP_ADMIN_EMAIL": credentials["email"],
            "UP_ADMIN_PASSWORD": credentials["password"],
            "UP_API_KEY": credentials["api_key"],
            "UP_ADMIN_ID": str(credentials["admin_id"]),
            "UP_ORG_ID": str(credentials["org_id"]),
        }
        command = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(HERE / "schemathesis.toml"),
            "run", f"{base_url}/api/schema/",
            "--url", base_url,
            "--seed", str(args.seed),
            "--max-examples", str(args.max_examples),
            "--workers", str(args.workers),
            "--report", "ndjson",
            "--report-ndjson-path", str(report),
        ]  # fmt: skip
        print("== " + " ".join(command[2:]))
        status = subprocess.run(command, cwd=ROOT, env=run_env, check=False).returncode
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    problems = []
    if status != 0:
        problems.append(f"schemathesis exited with {status}")
    cases = cases_run(report) if report.exists() else 0
    if cases < args.min_cases:
        problems.append(f"only {cases} test cases ran (at least {args.min_cases} expected)")
    tracebacks = server_tracebacks(log)
    if tracebacks:
        print(*tracebacks[:5], sep="\n\n")
        problems.append(f"the server logged {len(tracebacks)} tracebacks")
    print(f"== {cases} test cases in {time.monotonic() - started:.0f} s")
    if args.keep:
        print(f"== kept {tmp} (database, server.log, events.ndjson)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
