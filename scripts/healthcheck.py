"""Container health checks, one per process kind, that never import Django:

    python scripts/healthcheck.py web|worker|beat|consumer [--max-age SECONDS]

- web: `GET /health` on this container's gunicorn answers (2xx, or a redirect to HTTPS);
- worker, beat: their heartbeat file (usage_platform/heartbeat.py) was touched within
  `--max-age` seconds (the worker touches it every 10 s, beat on every tick, ≤ 5 s apart);
- consumer: this container's stream consumer (`consume_events` names it
  `<hostname>-<pid>`) talked to Redis within `--max-age` seconds. Redis keeps each
  consumer's idle time (XINFO CONSUMERS) and every blocking read resets it, so it is the
  consumer's heartbeat, kept where the consumer's work happens.

Settings come from running the usage_platform/settings package alone (no apps, no Django
setup; core/settings_probe.py), so they resolve exactly as the processes resolve them. Exit 0 when healthy, else 1 with
one line saying why.
"""

import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_MAX_AGE = 60.0


class Unhealthy(Exception):
    pass


def load_settings() -> dict:
    from core.settings_probe import settings_execute

    return vars(settings_execute("healthcheck_settings"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def check_web(settings: dict, timeout: float = 5.0) -> str:
    port = os.environ.get("PORT") or "8000"
    # Any allowed host name: a request for 127.0.0.1 is refused (400) when ALLOWED_HOSTS
    # names only the public domain.
    host = next((h for h in settings["ALLOWED_HOSTS"] if h != "*"), "localhost").lstrip(".")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Host": host, "X-Forwarded-Proto": "https"}
    )
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout) as response:
            return f"/health answered {response.status}"
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return f"/health answered {exc.code} (a redirect: the web process is serving)"
        raise Unhealthy(f"/health answered {exc.code}")
    except OSError as exc:
        raise Unhealthy(f"/health did not answer: {exc}")


def check_heartbeat(settings: dict, name: str, max_age: float) -> str:
    path = Path(settings["HEARTBEAT_DIR"]) / name
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        raise Unhealthy(f"no heartbeat file {path}")
    if age > max_age:
        raise Unhealthy(f"{name} heartbeat is {age:.0f} s old (limit {max_age:.0f} s)")
    return f"{name} heartbeat {age:.1f} s old"


def check_consumer(settings: dict, max_age: float) -> str:
    import redis

    if not settings["REDIS_URL"]:
        raise Unhealthy("REDIS_URL is not set: there is no stream to consume")
    client = redis.Redis.from_url(settings["REDIS_URL"], socket_connect_timeout=3, socket_timeout=3)
    try:
        consumers = client.xinfo_consumers(settings["INGEST_STREAM"], settings["INGEST_CONSUMER_GROUP"])
    except redis.RedisError as exc:
        raise Unhealthy(f"cannot read the consumer group: {exc}")
    prefix = f"{socket.gethostname()}-"
    mine = [c for c in consumers if _text(c["name"]).startswith(prefix)]
    if not mine:
        raise Unhealthy(f"no consumer named {prefix}* in group {settings['INGEST_CONSUMER_GROUP']}")
    idle = min(int(c["idle"]) for c in mine) / 1000
    if idle > max_age:
        raise Unhealthy(f"the consumer last read the stream {idle:.0f} s ago (limit {max_age:.0f} s)")
    return f"consumer read the stream {idle:.1f} s ago"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("web", "worker", "beat", "consumer"))
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, help="seconds (worker, beat, consumer)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.kind == "web":
            message = check_web(settings)
        elif args.kind == "consumer":
            message = check_consumer(settings, args.max_age)
        else:
            message = check_heartbeat(settings, args.kind, args.max_age)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}")
        return 1
    print(f"healthy: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
