"""Run the whole platform on one machine: web (gunicorn), Celery worker, Celery beat, and the
ingestion consumer when INGEST_MODE=queue. Ctrl-C stops them all.

    .venv/bin/python scripts/run_demo.py [--port 8000]

Used by `make demo` after migrate + seed + rollup. It also makes sure a platform staff
account exists for the Django admin and prints where everything is.

This supervisor never imports Django (the staff account is made in a child process, the
settings are read with runpy): it only waits, so it should cost a few MB, not a Django
process's worth (docs/benchmarks.md, "Memory").
"""

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAFF_EMAIL = "staff@usage-platform.demo"
STAFF_PASSWORD = "staff-demo-password"


def ensure_secret_key():
    """Settings refuse to start without SECRET_KEY when DEBUG is off. Run by hand (not from
    `make demo`, which does the same), the demo makes one random key in var/secret_key, readable
    only by its owner, and every process it starts reads it from there."""
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"):
        return
    path = ROOT / "var" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
    os.environ["SECRET_KEY_FILE"] = str(path)


def ensure_staff_account():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
    import django

    django.setup()
    from tenants.models import User

    if not User.objects.filter(email=STAFF_EMAIL).exists():
        User.objects.create_superuser(email=STAFF_EMAIL, password=STAFF_PASSWORD)


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port` (gunicorn would retry binding
    it for seconds, then exit, its messages lost among the workers')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_until_serving(port: int, web: subprocess.Popen, timeout: float = 60) -> bool:
    """Whether the web server answers /health before `timeout` (False if it exits first)."""
    deadline = time.time() + timeout
    while time.time() < deadline and web.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


# usage_platform/settings/product.py's default.
DEFAULT_SITE_URL = "http://127.0.0.1:8000"


def demo_site_url(configured: str, port: int) -> str | None:
    """The SITE_URL the demo's processes need when it serves on another port than the default's
    and none was set: the links of alert e-mails name this server (invitations already do)."""
    if configured == DEFAULT_SITE_URL and port != 8000:
        return f"http://127.0.0.1:{port}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--staff-account", action="store_true", help="only create the staff account, then exit")
    args = parser.parse_args()

    ensure_secret_key()
    if args.staff_account:
        ensure_staff_account()
        return
    if port_taken(args.port):
        print(
            f"Port {args.port} is already in use on 127.0.0.1 (another server?). Start the demo on "
            f"another one: make demo DEMO_PORT={args.port + 1}  (or scripts/run_demo.py --port {args.port + 1}).",
            file=sys.stderr,
        )
        sys.exit(1)
    subprocess.run([sys.executable, __file__, "--staff-account"], cwd=ROOT, check=True)
    # The settings alone (no Django apps): INGEST_MODE may come from .env as well.
    sys.path.insert(0, str(ROOT))
    from core.settings_probe import settings_execute

    settings = vars(settings_execute("demo_settings"))
    site_url = demo_site_url(settings.get("SITE_URL", DEFAULT_SITE_URL), args.port)
    if site_url:
        os.environ["SITE_URL"] = site_url

    commands = {
        "web": [
            str(BIN / "gunicorn"),
            "--config",
            "usage_platform/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "usage_platform.wsgi",
        ],
        "worker": [str(BIN / "celery"), "-A", "usage_platform", "worker", "--loglevel", "INFO", "--concurrency", "1"],
        "beat": [
            str(BIN / "celery"),
            "-A",
            "usage_platform",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(ROOT / "var" / "celerybeat-schedule"),
        ],
    }
    if settings["INGEST_MODE"] == "queue":
        commands["consumer"] = [sys.executable, "manage.py", "consume_events"]

    processes = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in commands.items()}
    if not wait_until_serving(args.port, processes["web"]):
        print("The web server did not start (its messages are above); stopping the rest.", file=sys.stderr)
        stop_all(processes)
        sys.exit(1)
    print(
        f"\nUsage Platform is running: http://127.0.0.1:{args.port}/  "
        f"(API docs: http://127.0.0.1:{args.port}/api/docs/, "
        f"staff admin: http://127.0.0.1:{args.port}/admin/ as {STAFF_EMAIL} / {STAFF_PASSWORD})\n"
        f"Started: {', '.join(commands)}. Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the rest.", flush=True)
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        stop_all(processes)


def stop_all(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every process still running, then SIGKILL to any not gone in 15 s."""
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 15
    for proc in processes.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
