"""The app CPU each ingestion route spends on 1,000 events, in one process: no HTTP server, no
client processes, so the figure barely moves with the machine's load (events/s on two shared
cores do).

    .venv/bin/python bench/ingest_cpu.py [--db pg|sqlite] [--requests 40] [--profile segment]

Each request of bench/ingest_compat.py's variants (the same bodies the `compat` scenario
sends: native, PostHog and Segment, plain and gzipped, 1,000 messages each, every one with
its own uuid or message id) goes through the whole Django stack as gunicorn hands it over
(`usage_platform.wsgi.application`, with its collector settings): middleware, key, body
decoding, mapping, the one validation pass, the end-user upsert and the events insert. The
variants alternate request by request; the report gives, per variant, the median and the
minimum of this process's CPU time (`time.process_time`) per request. With PostgreSQL the
database server's own CPU is not in it (bench/ingest.py reports that one).

`--profile VARIANT` runs that variant's requests under cProfile afterwards and prints the
functions by own time. The database (`up_compat_speed_cpu` on the local PostgreSQL, or a
SQLite file under var/bench/) is created fresh and dropped at the end.
"""

import argparse
import cProfile
import gc
import importlib
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from harness import ROOT, log, migrate, pg_drop, pg_recreate
from ingest_compat import VARIANTS, variant_request

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/up_compat_speed_cpu"


def _environ(path, headers, body):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


class GcClock:
    """The CPU the cyclic collector takes (gc.callbacks), added up between resets."""

    def __init__(self):
        self.total = 0.0
        self._started = 0.0
        self.generations = [0, 0, 0]
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.process_time()
        else:
            self.total += time.process_time() - self._started
            self.generations[info["generation"]] += 1

    def take(self):
        total, self.total = self.total, 0.0
        return total


def _send(application, request):
    path, headers, body = request
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = status

    chunks = application(_environ(path, headers, body), start_response)
    try:
        data = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    if not answer["status"].startswith("200"):
        raise RuntimeError(f"{path}: {answer['status']} {data[:300]!r}")
    return data


def _requests(variant, key, distinct_users, count, first_tag):
    """`count` requests of `variant`, each with its own uuids (message ids)."""
    import gzip

    from ingest_compat import PREFIX

    out = []
    for n in range(count):
        path, headers, template, compress = variant_request(variant, first_tag, key, distinct_users)
        body = template.replace(PREFIX, f"{first_tag:04x}{n:04x}").encode()
        out.append((path, headers, gzip.compress(body, compresslevel=6) if compress else body))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="created fresh, dropped at the end")
    parser.add_argument("--requests", type=int, default=40, help="measured requests per variant (after 3 warm-up)")
    parser.add_argument("--distinct-users", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--profile", help="variants (comma-separated) to run under cProfile afterwards")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]

    var = ROOT / "var" / "bench" / "cpu"
    var.mkdir(parents=True, exist_ok=True)
    sqlite_db = var / "ingest-cpu.sqlite3"
    url = args.pg_url if args.db == "pg" else f"sqlite:///{sqlite_db}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_db}{suffix}").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_MODE")}
    env.update(
        DJANGO_SETTINGS_MODULE="usage_platform.settings",
        DATABASE_URL=url,
        INGEST_MODE="direct",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
        CACHE_DIR=str(var / "cache"),
        CELERY_BROKER_DIR=str(var / "broker"),
        INGEST_THROTTLE_RATE="1000000000/min",
    )
    if args.db == "pg":
        pg_recreate(url)
    try:
        migrate(env)
        os.environ.update(env)
        os.environ.pop("REDIS_URL", None)
        sys.path.insert(0, str(ROOT))
        # The WSGI module sets Django up (and the web processes' collector), so it comes first.
        application = importlib.import_module("usage_platform.wsgi").application
        from tenants import services
        from tenants.models import Organization

        org = Organization.objects.create(slug="bench-cpu", name="Bench CPU")
        _, key = services.api_key_create(org=org, name="bench-cpu")
        total = args.requests + 3
        prepared = {v: _requests(v, key, args.distinct_users, total, 0x200 + i) for i, v in enumerate(variants)}
        log(f"{args.db}: {len(variants)} variants × {total} requests of 1,000 messages; load {os.getloadavg()}")
        cpu = {v: [] for v in variants}
        collector = {v: [] for v in variants}
        generations = {v: [0, 0, 0] for v in variants}
        gc_clock = GcClock()
        for n in range(total):
            for variant in variants:
                gc_clock.take()
                started = time.process_time()
                _send(application, prepared[variant][n])
                if n >= 3:
                    cpu[variant].append(time.process_time() - started)
                    collector[variant].append(gc_clock.take())
                    counts = zip(generations[variant], gc_clock.generations, strict=True)
                    generations[variant] = [a + b for a, b in counts]
                gc_clock.generations = [0, 0, 0]
        native = statistics.median(cpu[variants[0]])
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\napp CPU per 1,000 events ({args.db}, in-process, {args.requests} requests each; load {load})")
        for variant in variants:
            median, low = statistics.median(cpu[variant]), min(cpu[variant])
            print(
                f"  {variant:13} median {median * 1000:5.1f} ms, min {low * 1000:5.1f} ms"
                f"; {variants[0]}'s / this one's: {native / median:.0%}"
                f"; mean {statistics.fmean(cpu[variant]) * 1000:5.1f} ms, of which the cyclic collector"
                f" {statistics.fmean(collector[variant]) * 1000:.1f} ms (collections of each generation:"
                f" {generations[variant]})"
            )
        for n, variant in enumerate(v.strip() for v in (args.profile or "").split(",") if v.strip()):
            requests = _requests(variant, key, args.distinct_users, args.requests, 0x300 + n)
            profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on the database
            profiler.enable()
            for request in requests:
                _send(application, request)
            profiler.disable()
            out = io.StringIO()
            out.write(f"--- {variant} ---\n")
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(45)
            print(out.getvalue())
    finally:
        from django.db import connections

        connections.close_all()
        if args.db == "pg":
            pg_drop(url)


if __name__ == "__main__":
    main()
