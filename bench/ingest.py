"""Ingestion benchmark: a real gunicorn server, real HTTP, the machine's raw limits measured
in the same run, ratios against the targets of issue 4.

    .venv/bin/python bench/ingest.py [--duration 60] [--only raw,sqlite,pg,queue,track,backfill,disk,seed]
    .venv/bin/python bench/ingest.py --target http://127.0.0.1:8000 --api-key upk_… [--duration 20]

Scenarios (each starts its own `gunicorn usage_platform.wsgi` on 127.0.0.1, ports 8300+):
- sqlite: direct mode on SQLite (the embedded default: file cache, no Redis);
- pg: direct mode on PostgreSQL (Redis db 3 for the cache and throttle counters);
- queue: INGEST_MODE=queue on PostgreSQL + Redis db 3: first the endpoint alone (the stream
  fills), then the server stops and `manage.py consume_events` processes drain it;
- track: single-event `track` calls in queue mode;
- raw: PostgreSQL COPY into a copy of the events table (same columns and indexes), SQLite
  `executemany` into a copy of its events table, Redis XADD pipelined;
- backfill: PostgreSQL direct, live batches and past-day batches (spread over the last 90
  days) in alternating phases, all over the same 20,000 end users with age and gender, from
  `--backfill-clients` clients; the backfill rate against the live one (target ≥ 70 %);
- disk: the bytes per million events of the events table before partitioning (one table,
  unique (organization, uuid)) and after (monthly partitions, unique (organization, uuid,
  timestamp), plus the uuid dedupe table), both filled by the same COPYs (`--disk-rows`);
- seed: `manage.py seed_movielens --limit 100000` on a fresh SQLite database;
- compat (not in the default list: `--only compat`): PostHog's `/batch/` and Segment's
  `/v1/batch` (plain and gzipped) against `/api/v1/events/batch` on one server, alternating
  for `--compat-rounds` rounds (bench/ingest_compat.py; `--compat-db pg|sqlite`).

Clients are separate processes sending 1,000-event batches (each event with its own uuid,
so nothing is skipped as a duplicate) for `--duration` seconds after a short warm-up; the
report gives events/s, requests/s and p50/p99 per request, checks that the rows stored equal
the events accepted, and prints the ratios to the targets. The server's throttle is raised
out of the way (`INGEST_THROTTLE_RATE`): this measures ingestion, not the rate limit.

Everything it creates lives under var/bench/ (SQLite files, logs, caches, results.json); the
PostgreSQL database (`up_seed_bench` by default) is created fresh and dropped at the end, the
Redis keys it used in db 3 are deleted. Traffic goes to loopback addresses only.
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from harness import (
    PYTHON,
    ROOT,
    Server,
    load_average,
    load_summary,
    log,
    migrate,
    pg_drop,
    pg_recreate,
    post_loop,
    process_table,
)
from ingest_compat import report_lines as compat_report_lines
from ingest_compat import scenario_compat

# One folder per --port under var/bench/, so two runs side by side (on their own ports, databases
# and Redis dbs) never delete each other's SQLite files. Set in main().
VAR = ROOT / "var" / "bench"

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/up_seed_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"
STREAM = "bench:ingest:events"
BATCH = 1000
PREFIX = b"PPPPPPPP"  # replaced in every request by a unique 8-hex-digit uuid prefix

TARGETS = {
    "pg_events_per_s": 25_000,
    "pg_vs_copy": 0.60,
    "queue_endpoint_events_per_s": 50_000,
    "sqlite_vs_raw": 0.70,
    "track_requests_per_s": 1_000,
    "track_p99_ms": 50.0,
    "seed_seconds": 15.0,
    "backfill_vs_live": 0.70,
}


# --- helpers --------------------------------------------------------------------------------


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "INGEST_MODE")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "usage_platform.settings",
            "HF_HUB_OFFLINE": "1",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "CACHE_DIR": str(VAR / "cache"),
            "CELERY_BROKER_DIR": str(VAR / "broker"),
            "INGEST_THROTTLE_RATE": "1000000000/min",
            "INGEST_STREAM": STREAM,
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def django(env, code):
    """Run `code` in a Django process with `env`; returns its last stdout line parsed as JSON."""
    script = f"import json, os, sys\nsys.path.insert(0, {str(ROOT)!r})\nimport django\ndjango.setup()\n" + code
    for attempt in range(3):
        out = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode == 0:
            return json.loads(out.stdout.strip().splitlines()[-1])
        # The working tree is shared with people editing it: a half-saved file fails an import.
        log(f"setup step failed (attempt {attempt + 1}): {out.stderr.strip().splitlines()[-1:]}")
        time.sleep(3)
    raise RuntimeError(out.stderr)


SETUP_CODE = """
from tenants.models import Organization
from tenants import services
org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
_, key = services.api_key_create(org=org, name="bench")
print(json.dumps({"org": org.pk, "key": key}))
"""

COUNT_CODE = """
from telemetry.models import UsageEvent
print(json.dumps(UsageEvent.objects.count()))
"""


def redis_cleanup(url):
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter("bench:*")) + list(client.scan_iter(":1:throttle:*"))
    keys += list(client.scan_iter("up:*"))  # the cache's key prefix (throttle counters, health probe)
    if keys:
        client.delete(*keys)


# --- CPU accounting ------------------------------------------------------------------------
# The machine's two cores are shared with whatever else runs, so besides the wall-clock rates
# the benchmark reports the CPU each event costs (from /proc), which load does not change much.


def pg_backend_pids(url):
    """The PostgreSQL server processes serving connections to the benchmark database."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return {pid for (pid,) in rows}


class CpuMeter:
    """CPU used between start() and stop() by a process tree (the gunicorn master and its
    workers, or consumer processes) and by the PostgreSQL backends of the benchmark database.
    A process that appears in between counts from zero."""

    def __init__(self, root_pids, pg_url=None):
        self.root_pids, self.pg_url = set(root_pids), pg_url

    def _snapshot(self):
        stats = process_table()
        app = {pid: cpu for pid, (ppid, cpu) in stats.items() if pid in self.root_pids or ppid in self.root_pids}
        db = {}
        if self.pg_url:
            db = {pid: stats[pid][1] for pid in pg_backend_pids(self.pg_url) if pid in stats}
        return app, db

    def start(self):
        self.before = self._snapshot()
        self.last_db = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        # Backends come and go (CONN_MAX_AGE recycles a worker's connection every minute):
        # remember each one's CPU while it is alive, or its work would vanish with it.
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self):
        if not self.pg_url:
            return
        stats = process_table()
        for pid in pg_backend_pids(self.pg_url):
            if pid in stats:
                self.last_db[pid] = stats[pid][1]

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()
        app_after, _ = self._snapshot()
        app = sum(cpu - self.before[0].get(pid, 0.0) for pid, cpu in app_after.items())
        db = sum(cpu - self.before[1].get(pid, 0.0) for pid, cpu in self.last_db.items())
        return {"app_cpu_s": round(app, 2), "db_cpu_s": round(db, 2)}


# --- the load ------------------------------------------------------------------------------


DISTINCT_USERS = 1000  # end users per batch; --distinct-users changes it


def batch_body(scenario_tag):
    """A 1,000-event batch whose uuids share the placeholder prefix PREFIX, spread over
    DISTINCT_USERS end users (the worst case, 1,000, upserts a user for every event)."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    events = []
    for i in range(BATCH):
        events.append(
            {
                "uuid": f"{PREFIX.decode()}-{scenario_tag:04x}-4{i:03x}-8000-{i:012x}",
                "feature": f"feature_{i % 50}",
                "user_id": f"bench_user_{i % DISTINCT_USERS}",
                "event_type": "interaction",
                "session_id": f"bench-session-{i % 100}",
                "session_duration": 60 + i % 240,
                "timestamp": now,
                "metadata": {"source": "bench", "plan": "pro", "n": i},
            }
        )
    return json.dumps({"events": events}).encode()


BACKFILL_USERS = 20_000  # end users of the backfill scenario, each with an age and a gender
BACKFILL_DAYS = 90


def spread_bodies(scenario_tag, *, clients, per_client, past_days, seed=14):
    """For each client, `per_client` different 1,000-event batches over BACKFILL_USERS end users
    with age and gender and 50 features, picked at random. `past_days`: timestamps spread over
    the past days up to that many days back (a backfill; today excluded); 0: within the last
    minute (live traffic of the same shape)."""
    rng = random.Random(seed + scenario_tag)
    now = datetime.now(UTC)
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    oldest = (now - timedelta(days=past_days)).timestamp()
    out = []
    for client in range(clients):
        bodies = []
        for b in range(per_client):
            events = []
            for i in range(BATCH):
                user = rng.randrange(BACKFILL_USERS)
                if past_days:
                    ts = datetime.fromtimestamp(rng.uniform(oldest, today_start.timestamp() - 1), UTC)
                else:
                    ts = now - timedelta(seconds=rng.uniform(0, 60))
                events.append(
                    {
                        "uuid": f"{PREFIX.decode()}-{scenario_tag:04x}-4{(client * per_client + b) % 4096:03x}"
                        f"-8{i:03x}-000000000000",
                        "feature": f"feature_{rng.randrange(50)}",
                        "user_id": f"bf_user_{user}",
                        "age": 18 + user % 60,
                        "gender": "FM"[user % 2],
                        "session_id": f"bf-session-{user}-{ts:%j}",
                        "session_duration": rng.randrange(5, 600),
                        "timestamp": ts.isoformat(timespec="milliseconds"),
                        "metadata": {"source": "bench"},
                    }
                )
            bodies.append(json.dumps({"events": events}).encode())
        out.append(bodies)
    return out


def track_body(scenario_tag):
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return json.dumps(
        {
            "uuid": f"{PREFIX.decode()}-{scenario_tag:04x}-4000-8000-000000000000",
            "feature": "feature_1",
            "user_id": "bench_user_1",
            "session_duration": 42,
            "timestamp": now,
            "metadata": {"source": "bench"},
        }
    ).encode()


def _payloads(bodies, client_id):
    """`bodies` cycled, each with the request's own uuid prefix (built on the clock: cheap)."""
    counter = 0
    while True:
        counter += 1
        yield bodies[counter % len(bodies)].replace(PREFIX, f"{client_id:02x}{counter:06x}".encode())


def _client(client_id, host, port, path, key, body, warmup_until, stop_at, results):
    """Sends `body` (bytes, or one list of bodies per client, cycled) until `stop_at`."""
    bodies = body[(client_id - 1) % len(body)] if isinstance(body, list) else [body]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    payloads = _payloads(bodies, client_id)
    results.put(post_loop(port, path, headers, payloads, warmup_until=warmup_until, stop_at=stop_at, host=host))


def load(host, port, path, key, body, *, clients, duration, warmup=3.0):
    """Runs `clients` processes for warm-up + duration; returns the aggregated figures."""
    results = mp.Queue()
    start = time.monotonic() + 0.5
    warmup_until, stop_at = start + warmup, start + warmup + duration
    procs = [
        mp.Process(target=_client, args=(i + 1, host, port, path, key, body, warmup_until, stop_at, results))
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    parts = [results.get(timeout=duration + warmup + 180) for _ in procs]
    for p in procs:
        p.join()
    return load_summary(parts, duration)


# --- raw limits ----------------------------------------------------------------------------


def _raw_rows(n, org_id=1):
    now = datetime.now(UTC)
    meta = '{"source": "bench", "plan": "pro"}'
    return [
        (uuid.uuid4(), org_id, 1 + i % 50, 1 + i % 2000, "interaction", f"s{i % 100}", 60.0, meta, now, now)
        for i in range(n)
    ]


RAW_COLUMNS = (
    "uuid, organization_id, feature_id, end_user_id, event_type, session_id, session_duration, metadata, "
    '"timestamp", received_at'
)


def raw_pg_copy(url, rows_total, per_transaction):
    """COPY into a copy of telemetry_usageevent (same columns, defaults and indexes; no FKs)."""
    import psycopg

    rows = _raw_rows(rows_total)
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_events")
        conn.execute("CREATE TABLE bench_raw_events (LIKE telemetry_usageevent INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        for offset in range(0, rows_total, per_transaction):
            with conn.cursor() as cur, cur.copy(f"COPY bench_raw_events ({RAW_COLUMNS}) FROM STDIN") as copy:
                for row in rows[offset : offset + per_transaction]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw_events")
        conn.commit()
    return {"rows": rows_total, "rows_per_transaction": per_transaction, "rows_per_s": rows_total / elapsed}


_DISK_INDEXES = (
    '(organization_id, "timestamp")',
    '(organization_id, feature_id, "timestamp")',
    '(organization_id, end_user_id, "timestamp")',
)


def _disk_rows(n):
    """`n` events over the last 90 days, 50 features, 20,000 end users, as ingestion writes them."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    meta = '{"source": "bench", "plan": "pro"}'
    rows = []
    for i in range(n):
        ts = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        rows.append(
            (uuid.uuid4(), 1, 1 + i % 50, 1 + rng.randrange(20_000), "interaction", f"s{i % 100}", 60.0, meta, ts, now)
        )
    return rows


def raw_pg_disk(url, rows_total, per_transaction=1000):
    """Bytes per million events, table and indexes, of the events table before partitioning
    and after (partitions + the uuid dedupe table), each filled by COPYs of `per_transaction`
    rows with its indexes in place, as ingestion fills them (random uuids leave their index
    pages part-full)."""
    import psycopg

    rows = _disk_rows(rows_total)
    months = sorted({(r[8].year, r[8].month) for r in rows})
    out = {"rows": rows_total}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_disk_plain, bench_disk_parted, bench_disk_uuid")
        conn.execute("CREATE TABLE bench_disk_plain (LIKE telemetry_usageevent INCLUDING DEFAULTS INCLUDING IDENTITY)")
        conn.execute("ALTER TABLE bench_disk_plain ADD PRIMARY KEY (id), ADD UNIQUE (organization_id, uuid)")
        conn.execute(
            "CREATE TABLE bench_disk_parted (LIKE telemetry_usageevent INCLUDING DEFAULTS INCLUDING IDENTITY) "
            'PARTITION BY RANGE ("timestamp")'
        )
        for year, month in months:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            conn.execute(
                f"CREATE TABLE bench_disk_parted_{year}_{month:02d} PARTITION OF bench_disk_parted "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        conn.execute(
            'ALTER TABLE bench_disk_parted ADD PRIMARY KEY (id, "timestamp"), '
            'ADD UNIQUE (organization_id, uuid, "timestamp")'
        )
        conn.execute("CREATE TABLE bench_disk_uuid (LIKE telemetry_eventuuid INCLUDING ALL)")
        for table in ("bench_disk_plain", "bench_disk_parted"):
            for columns in _DISK_INDEXES:
                conn.execute(f"CREATE INDEX ON {table} {columns}")
        for table in ("bench_disk_plain", "bench_disk_parted"):
            started = time.perf_counter()
            for offset in range(0, rows_total, per_transaction):
                chunk = rows[offset : offset + per_transaction]
                with conn.transaction(), conn.cursor() as cur:
                    if table == "bench_disk_parted":
                        with cur.copy("COPY bench_disk_uuid (organization_id, uuid, received_at) FROM STDIN") as copy:
                            for row in chunk:
                                copy.write_row((row[1], row[0], row[9]))
                    with cur.copy(f"COPY {table} ({RAW_COLUMNS}) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)
            out[f"{table}_copy_rows_per_s"] = rows_total / (time.perf_counter() - started)
        conn.execute("VACUUM ANALYZE bench_disk_plain, bench_disk_parted, bench_disk_uuid")

        def sizes(relations):
            heap = index = 0
            for rel in relations:
                h, i = conn.execute(
                    "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", (rel, rel)
                ).fetchone()
                heap, index = heap + h, index + i
            return heap, index

        parts = [
            r
            for (r,) in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'bench_disk_parted'::regclass"
            ).fetchall()
        ]
        per_million = 1e6 / rows_total / 2**20
        for name, relations in (("before", ["bench_disk_plain"]), ("after", parts), ("dedupe", ["bench_disk_uuid"])):
            heap, index = sizes(relations)
            out[name] = {
                "table_mib_per_million": round(heap * per_million, 1),
                "indexes_mib_per_million": round(index * per_million, 1),
                "total_mib_per_million": round((heap + index) * per_million, 1),
            }
        out["partitions"] = len(parts)
        conn.execute("DROP TABLE bench_disk_plain, bench_disk_parted, bench_disk_uuid")
    return out


def raw_sqlite(path, rows_total, per_transaction):
    """executemany INSERT OR IGNORE, WAL + synchronous=NORMAL as the app's settings, into a copy
    of the migrated events table with its indexes (FK checks off, as in the PG copy)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("DROP TABLE IF EXISTS bench_raw_events")
    schema = conn.execute(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'telemetry_usageevent' AND sql IS NOT NULL"
    ).fetchall()
    for kind, sql in sorted(schema, key=lambda s: s[0] != "table"):
        sql = sql.replace('"telemetry_usageevent"', '"bench_raw_events"')
        if kind == "index":
            sql = sql.replace('INDEX "', 'INDEX "bench_raw_', 1)
        conn.execute(sql)
    rows = [
        (r[0].hex, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8].isoformat(" "), r[9].isoformat(" "))
        for r in _raw_rows(rows_total)
    ]
    sql = f"INSERT OR IGNORE INTO bench_raw_events ({RAW_COLUMNS}) VALUES ({', '.join('?' * 10)})"
    started = time.perf_counter()
    for offset in range(0, rows_total, per_transaction):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[offset : offset + per_transaction])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.execute("DROP TABLE bench_raw_events")
    conn.close()
    return {"rows": rows_total, "rows_per_transaction": per_transaction, "rows_per_s": rows_total / elapsed}


def raw_xadd(url, total, pipeline):
    import redis

    client = redis.Redis.from_url(url)
    key = "bench:raw-xadd"
    payload = json.dumps(json.loads(batch_body(0))["events"][0]).encode()
    client.delete(key)
    started = time.perf_counter()
    for _ in range(0, total, pipeline):
        pipe = client.pipeline(transaction=False)
        for _ in range(pipeline):
            pipe.xadd(key, {"d": payload})
        pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(key)
    return {"messages": total, "pipeline": pipeline, "payload_bytes": len(payload), "msgs_per_s": total / elapsed}


# --- scenarios -----------------------------------------------------------------------------


def _per_cpu(result, cpu):
    """CPU per 1,000 events (or per track request) of the app and the database, and the rate
    two cores doing nothing else would reach at that cost. The CPU covers the warm-up too, so
    it is divided by everything accepted, warm-up included."""
    result.update(cpu)
    done = result["accepted_incl_warmup"]
    if not done:
        return
    server = cpu["app_cpu_s"] + cpu["db_cpu_s"]
    result["app_cpu_ms_per_1000_events"] = round(1e6 * cpu["app_cpu_s"] / done, 1)
    result["db_cpu_ms_per_1000_events"] = round(1e6 * cpu["db_cpu_s"] / done, 1)
    result["projected_events_per_s_on_2_idle_cores"] = round(2 * done / server) if server else None


def scenario_direct(name, env, port, args, tag):
    migrate(env)
    setup = django(env, SETUP_CODE)
    before = django(env, COUNT_CODE)
    with Server(name, env, port, args.workers, VAR) as server:
        log(f"{name}: gunicorn -w {args.workers} on :{port}, {args.clients} clients × {args.duration:g} s")
        meter = CpuMeter([server.proc.pid], args.pg_url if env["DATABASE_URL"].startswith("postgres") else None)
        meter.start()
        result = load(
            "127.0.0.1",
            port,
            "/api/v1/events/batch",
            setup["key"],
            batch_body(tag),
            clients=args.clients,
            duration=args.duration,
        )
        cpu = meter.stop()
    _per_cpu(result, cpu)
    stored = django(env, COUNT_CODE) - before
    result["stored"] = stored
    log(
        f"{name}: {result['events_per_s']:,.0f} events/s, p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms; stored {stored:,} = accepted {result['accepted_incl_warmup']:,}: "
        f"{stored == result['accepted_incl_warmup']}"
    )
    return result


def scenario_queue(env, port, args, tag):
    import redis

    client = redis.Redis.from_url(args.redis_url)
    client.delete(STREAM)
    migrate(env)
    setup = django(env, SETUP_CODE)
    before = django(env, COUNT_CODE)
    with Server("queue", env, port, args.workers, VAR) as server:
        log(f"queue: gunicorn -w {args.workers} on :{port}, {args.clients} clients × {args.queue_duration:g} s")
        meter = CpuMeter([server.proc.pid], args.pg_url).start()
        endpoint = load(
            "127.0.0.1",
            port,
            "/api/v1/events/batch",
            setup["key"],
            batch_body(tag),
            clients=args.clients,
            duration=args.queue_duration,
        )
        cpu = meter.stop()
    _per_cpu(endpoint, cpu)
    backlog_entries = client.xlen(STREAM)
    log(f"queue endpoint: {endpoint['events_per_s']:,.0f} events/s; {backlog_entries:,} stream entries to drain")

    consumers = []
    started = time.monotonic()
    for i in range(args.consumers):
        logfile = open(VAR / f"consumer-{i}.log", "ab")  # noqa: SIM115 - closed with the process
        consumers.append(
            subprocess.Popen(
                [PYTHON, "manage.py", "consume_events", "--consumer", f"bench-{i}", "--block-ms", "200"],
                cwd=ROOT,
                env=env,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    meter = CpuMeter([p.pid for p in consumers], args.pg_url).start()
    deadline = started + max(600, args.queue_duration * 20)
    while client.xlen(STREAM) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    drain_cpu = meter.stop()
    # The last batches are XDELed right after their commit: the stream is empty = all stored.
    drain_seconds = time.monotonic() - started
    for proc in consumers:
        os.kill(proc.pid, signal.SIGTERM)
    for proc in consumers:
        proc.wait(60)
    stored = django(env, COUNT_CODE) - before
    drain = {
        "consumers": args.consumers,
        "entries": backlog_entries,
        "events": stored,
        "seconds": drain_seconds,
        "events_per_s": stored / drain_seconds if drain_seconds else float("nan"),
        "load_average_after": load_average(),
        **drain_cpu,
    }
    drained = drain_cpu["app_cpu_s"] + drain_cpu["db_cpu_s"]
    if stored and drained:
        drain["app_cpu_ms_per_1000_events"] = round(1e6 * drain_cpu["app_cpu_s"] / stored, 1)
        drain["db_cpu_ms_per_1000_events"] = round(1e6 * drain_cpu["db_cpu_s"] / stored, 1)
        drain["projected_events_per_s_on_2_idle_cores"] = round(2 * stored / drained)
    endpoint["stored"] = stored
    log(
        f"queue: stored {stored:,} = accepted {endpoint['accepted_incl_warmup']:,}: "
        f"{stored == endpoint['accepted_incl_warmup']}"
    )
    log(f"queue drain: {drain['events_per_s']:,.0f} events/s with {args.consumers} consumers ({drain_seconds:.1f} s)")
    client.delete(STREAM)
    return {"endpoint": endpoint, "drain": drain}


def scenario_track(env, port, args, tag):
    import redis

    client = redis.Redis.from_url(args.redis_url)
    client.delete(STREAM)
    setup = django(env, SETUP_CODE)
    with Server("track", env, port, args.workers, VAR) as server:
        log(f"track: gunicorn -w {args.workers} on :{port}, {args.track_clients} clients × {args.duration:g} s")
        meter = CpuMeter([server.proc.pid], args.pg_url).start()
        result = load(
            "127.0.0.1",
            port,
            "/api/v1/events/track",
            setup["key"],
            track_body(tag),
            clients=args.track_clients,
            duration=args.duration,
        )
        cpu = meter.stop()
    _per_cpu(result, cpu)
    if result["accepted_incl_warmup"]:
        result["app_cpu_ms_per_request"] = round(1000 * cpu["app_cpu_s"] / result["accepted_incl_warmup"], 2)
        result["db_cpu_ms_per_request"] = round(1000 * cpu["db_cpu_s"] / result["accepted_incl_warmup"], 2)
    result.pop("accepted")
    result["stream_entries"] = client.xlen(STREAM)
    client.delete(STREAM)
    log(
        f"track: {result['requests_per_s']:,.0f} requests/s, "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    return result


def scenario_backfill(env, port, args, tag):
    """Past-day batches against live ones of the same shape, on one PostgreSQL server, in
    alternating phases (live, backfill, live, backfill, …; `--backfill-rounds` of each) so
    that a change in the machine's load falls on both: live batches carry timestamps within
    the last minute, backfill batches timestamps spread over the last BACKFILL_DAYS days
    (today excluded); the same BACKFILL_USERS end users with age and gender throughout. The
    figure is the backfill events over the live events, in equal time."""
    migrate(env)
    setup = django(env, SETUP_CODE)
    before = django(env, COUNT_CODE)
    out = {"live": [], "backfill": []}
    with Server("backfill", env, port, args.workers, VAR) as server:
        for n in range(2 * args.backfill_rounds):
            name, days = ("live", 0) if n % 2 == 0 else ("backfill", BACKFILL_DAYS)
            bodies = spread_bodies(
                tag * 16 + n, clients=args.backfill_clients, per_client=args.backfill_bodies, past_days=days
            )
            meter = CpuMeter([server.proc.pid], args.pg_url).start()
            result = load(
                "127.0.0.1",
                port,
                "/api/v1/events/batch",
                setup["key"],
                bodies,
                clients=args.backfill_clients,
                duration=args.duration,
            )
            _per_cpu(result, meter.stop())
            log(f"backfill/{name} {n // 2 + 1}: {result['events_per_s']:,.0f} events/s, p50 {result['p50_ms']:.0f} ms")
            out[name].append(result)
    stored = django(env, COUNT_CODE) - before
    accepted = sum(r["accepted_incl_warmup"] for phase in ("live", "backfill") for r in out[phase])
    for name in ("live", "backfill"):
        runs = out[name]
        done = sum(r["accepted_incl_warmup"] for r in runs)
        out[f"{name}_events_per_s"] = sum(r["events_per_s"] for r in runs) / len(runs)
        out[f"{name}_cpu_ms_per_1000_events"] = (
            round(1e6 * sum(r["app_cpu_s"] + r["db_cpu_s"] for r in runs) / done, 1) if done else None
        )
    live = out["live_events_per_s"]
    out["backfill_vs_live"] = out["backfill_events_per_s"] / live if live else float("nan")
    out["stored"], out["accepted"] = stored, accepted
    log(
        f"backfill: {out['backfill_vs_live']:.0%} of live; "
        f"stored {stored:,} = accepted {accepted:,}: {stored == accepted}"
    )
    return out


def scenario_seed():
    db = VAR / "seed.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = base_env(DATABASE_URL=f"sqlite:///{db}")
    migrate(env)
    cmd = [PYTHON, "manage.py", "seed_movielens", "--limit", "100000", "--orgs", "3"]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    source = next((line for line in out.stdout.splitlines() if line.startswith("Source:")), "")
    log(f"seed: {seconds:.1f} s wall, {cpu:.1f} s CPU ({source})")
    return {
        "seconds": seconds,
        "cpu_s": round(cpu, 2),
        "source": source,
        "command": " ".join(cmd[1:]),
        "load_average_after": load_average(),
    }


# --- report --------------------------------------------------------------------------------


def verdict(ok):
    return "met" if ok else "MISSED"


def cpu_note(r, unit="1,000 events"):
    if "app_cpu_ms_per_1000_events" not in r:
        return ""
    app, db = r["app_cpu_ms_per_1000_events"], r["db_cpu_ms_per_1000_events"]
    if unit != "1,000 events":
        app, db = app / 1000, db / 1000
    projected = r.get("projected_events_per_s_on_2_idle_cores")
    return f" [CPU per {unit}: app {app:,.1f} ms + database {db:,.1f} ms → ~{projected:,}/s on 2 idle cores]"


def report(results):
    lines = []
    raw = results.get("raw", {})
    copy_rate = raw.get("pg_copy_big", {}).get("rows_per_s")
    sqlite_raw = raw.get("sqlite", {}).get("rows_per_s")
    if "sqlite" in results:
        r = results["sqlite"]
        line = f"SQLite direct: {r['events_per_s']:,.0f} events/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        if sqlite_raw:
            ratio = r["events_per_s"] / sqlite_raw
            line += f"; {ratio:.0%} of raw {sqlite_raw:,.0f} rows/s (target ≥ 70 %: {verdict(ratio >= 0.7)})"
        lines.append(line + cpu_note(r))
    if "pg" in results:
        r = results["pg"]
        line = (
            f"PostgreSQL direct: {r['events_per_s']:,.0f} events/s (target ≥ 25,000: "
            f"{verdict(r['events_per_s'] >= TARGETS['pg_events_per_s'])}), p50 {r['p50_ms']:.0f} ms, "
            f"p99 {r['p99_ms']:.0f} ms"
        )
        if copy_rate:
            ratio = r["events_per_s"] / copy_rate
            line += f"; {ratio:.0%} of raw COPY {copy_rate:,.0f} rows/s (target ≥ 60 %: {verdict(ratio >= 0.6)})"
        copy_1000 = raw.get("pg_copy_1000", {}).get("rows_per_s")
        if copy_1000:
            # The like-for-like figure: the endpoint also commits every 1,000 events.
            line += f", {r['events_per_s'] / copy_1000:.0%} of COPY in 1,000-row transactions ({copy_1000:,.0f} rows/s)"
        lines.append(line + cpu_note(r))
    if "queue" in results:
        e, d = results["queue"]["endpoint"], results["queue"]["drain"]
        lines.append(
            f"Queue endpoint: {e['events_per_s']:,.0f} events/s (target ≥ 50,000: "
            f"{verdict(e['events_per_s'] >= TARGETS['queue_endpoint_events_per_s'])}), p50 {e['p50_ms']:.0f} ms, "
            f"p99 {e['p99_ms']:.0f} ms" + cpu_note(e)
        )
        line = f"Queue drain: {d['events_per_s']:,.0f} events/s with {d['consumers']} consumers"
        if "pg" in results:
            line += f" (target ≥ direct {results['pg']['events_per_s']:,.0f}: "
            line += f"{verdict(d['events_per_s'] >= results['pg']['events_per_s'])})"
        lines.append(line + cpu_note(d))
    if "backfill" in results:
        b = results["backfill"]
        lines.append(
            f"Backfill (PostgreSQL direct, {BACKFILL_USERS:,} users with age and gender, {len(b['live'])} rounds): "
            f"past-day batches {b['backfill_events_per_s']:,.0f} events/s against live "
            f"{b['live_events_per_s']:,.0f}: {b['backfill_vs_live']:.0%} (target ≥ 70 %: "
            f"{verdict(b['backfill_vs_live'] >= TARGETS['backfill_vs_live'])}); server CPU per 1,000 events "
            f"{b['backfill_cpu_ms_per_1000_events']} ms against {b['live_cpu_ms_per_1000_events']} ms live"
        )
    if "track" in results:
        r = results["track"]
        lines.append(
            f"Track (queue mode): {r['requests_per_s']:,.0f} requests/s (target ≥ 1,000: "
            f"{verdict(r['requests_per_s'] >= TARGETS['track_requests_per_s'])}), p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms (target ≤ 50: {verdict(r['p99_ms'] <= TARGETS['track_p99_ms'])})"
            + cpu_note(r, unit="request")
        )
    if "disk" in results:
        d = results["disk"]
        before, after, dedupe = d["before"], d["after"], d["dedupe"]
        lines.append(
            f"Disk per million events (table + indexes): before {before['total_mib_per_million']} MiB "
            f"({before['table_mib_per_million']} + {before['indexes_mib_per_million']}), after "
            f"{after['total_mib_per_million']} MiB ({after['table_mib_per_million']} + "
            f"{after['indexes_mib_per_million']}, {d['partitions']} partitions) + dedupe table "
            f"{dedupe['total_mib_per_million']} MiB per million uuids in its window"
        )
    if raw:
        parts = []
        if "pg_copy_big" in raw:
            parts.append(f"PG COPY {raw['pg_copy_big']['rows_per_s']:,.0f} rows/s")
        if "pg_copy_1000" in raw:
            parts.append(f"PG COPY in 1,000-row transactions {raw['pg_copy_1000']['rows_per_s']:,.0f} rows/s")
        if "sqlite" in raw:
            parts.append(f"SQLite executemany (1,000-row transactions) {raw['sqlite']['rows_per_s']:,.0f} rows/s")
        if "xadd" in raw:
            parts.append(f"XADD pipelined {raw['xadd']['msgs_per_s']:,.0f} msgs/s")
        lines.append("Raw limits: " + "; ".join(parts))
    if "compat" in results:
        lines += compat_report_lines(f"compat ({results['args']['compat_db']})", results["compat"])
    if "seed" in results:
        s = results["seed"]
        lines.append(
            f"seed_movielens --limit 100000 on SQLite: {s['seconds']:.1f} s (target ≤ 15 s: "
            f"{verdict(s['seconds'] <= TARGETS['seed_seconds'])}), {s['cpu_s']:.1f} s CPU — {s['source']}"
        )
    return lines


def _compat(args, env):
    migrate(env)
    pg_url = args.pg_url if env["DATABASE_URL"].startswith("postgres") else None
    return scenario_compat(
        f"compat-{args.compat_db}",
        env,
        args.port + 5,
        args,
        server_cls=Server,
        setup=django(env, SETUP_CODE),
        count=lambda: django(env, COUNT_CODE),
        cpu_meter=lambda pids: CpuMeter(pids, pg_url),
        var=VAR,
    )


def run_target(args):
    parts = urlsplit(args.target)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("--target must be a loopback address (this benchmark never loads another machine)")
    port = parts.port or 80
    batch = load(
        parts.hostname,
        port,
        "/api/v1/events/batch",
        args.api_key,
        batch_body(7),
        clients=args.clients,
        duration=args.duration,
    )
    print(
        f"batch: {batch['events_per_s']:,.0f} events/s, p50 {batch['p50_ms']:.0f} ms, "
        f"p99 {batch['p99_ms']:.0f} ms, statuses {batch['statuses']}"
    )
    track = load(
        parts.hostname,
        port,
        "/api/v1/events/track",
        args.api_key,
        track_body(8),
        clients=args.track_clients,
        duration=args.duration,
    )
    print(
        f"track: {track['requests_per_s']:,.0f} requests/s, p50 {track['p50_ms']:.1f} ms, "
        f"p99 {track['p99_ms']:.1f} ms, statuses {track['statuses']}"
    )


def main():
    global DISTINCT_USERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per scenario (after warm-up)")
    parser.add_argument(
        "--queue-duration", type=float, default=None, help="seconds of queue-mode load (default --duration)"
    )
    parser.add_argument("--only", default="raw,sqlite,pg,queue,track,backfill,seed", help="comma-separated scenarios")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=4, help="client processes sending batches")
    parser.add_argument("--track-clients", type=int, default=6, help="client processes sending track calls")
    parser.add_argument("--backfill-clients", type=int, default=2, help="client processes of the backfill scenario")
    parser.add_argument("--backfill-rounds", type=int, default=3, help="live and backfill phases of each")
    parser.add_argument(
        "--backfill-bodies", type=int, default=100, help="different batches per backfill client (cycled)"
    )
    parser.add_argument("--consumers", type=int, default=2, help="consume_events processes for the drain")
    parser.add_argument("--port", type=int, default=8300, help="first port (each scenario takes the next one)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="benchmark database (created fresh, dropped at the end)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--distinct-users", type=int, default=DISTINCT_USERS, help="end users per batch (1–1000)")
    parser.add_argument("--raw-rows", type=int, default=300_000, help="rows for each raw insert measurement")
    parser.add_argument("--disk-rows", type=int, default=1_000_000, help="events for the disk measurement")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the PostgreSQL database at the end")
    parser.add_argument("--target", help="only load an already running server (loopback) with --api-key")
    parser.add_argument("--api-key")
    parser.add_argument("--compat-rounds", type=int, default=2, help="rounds of the compat scenario's variants")
    parser.add_argument("--compat-db", choices=("pg", "sqlite"), default="pg", help="database of the compat scenario")
    args = parser.parse_args()
    args.queue_duration = args.queue_duration or args.duration
    DISTINCT_USERS = max(1, min(BATCH, args.distinct_users))
    global VAR
    VAR = ROOT / "var" / "bench" / f"port-{args.port}"
    VAR.mkdir(parents=True, exist_ok=True)
    if args.target:
        if not args.api_key:
            sys.exit("--target needs --api-key")
        run_target(args)
        return

    only = {s.strip() for s in args.only.split(",") if s.strip()}
    results = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "uptime_before": subprocess.getoutput("uptime").strip()},
        "args": {k: v for k, v in vars(args).items() if k != "api_key"},
    }
    log(f"machine: {os.cpu_count()} cores; {results['machine']['uptime_before']}")
    sqlite_db = VAR / "ingest.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_db}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(VAR / "cache", ignore_errors=True)
    sqlite_env = base_env(DATABASE_URL=f"sqlite:///{sqlite_db}", INGEST_MODE="direct")
    pg_env = base_env(DATABASE_URL=args.pg_url, REDIS_URL=args.redis_url, INGEST_MODE="direct")
    # The shared benchmark Redis keeps no AOF; without this the endpoint would write directly.
    queue_env = base_env(
        DATABASE_URL=args.pg_url, REDIS_URL=args.redis_url, INGEST_MODE="queue", INGEST_ALLOW_VOLATILE_REDIS="true"
    )
    needs_pg = only & {"pg", "queue", "track", "raw", "backfill", "disk"} or (
        "compat" in only and args.compat_db == "pg"
    )
    try:
        if needs_pg:
            pg_recreate(args.pg_url)
            migrate(pg_env)
        if "raw" in only:
            migrate(sqlite_env)
            raw = {}
            log(f"raw: PostgreSQL COPY, {args.raw_rows:,} rows in 50,000-row transactions")
            raw["pg_copy_big"] = raw_pg_copy(args.pg_url, args.raw_rows, 50_000)
            log(f"raw: PostgreSQL COPY, {args.raw_rows:,} rows in 1,000-row transactions")
            raw["pg_copy_1000"] = raw_pg_copy(args.pg_url, args.raw_rows, 1_000)
            log(f"raw: SQLite executemany, {args.raw_rows:,} rows in 1,000-row transactions")
            raw["sqlite"] = raw_sqlite(str(sqlite_db), args.raw_rows, 1_000)
            log("raw: Redis XADD pipelined")
            raw["xadd"] = raw_xadd(args.redis_url, 200_000, 1_000)
            raw["load_average_after"] = load_average()
            results["raw"] = raw
            for name, figure in raw.items():
                if isinstance(figure, dict):
                    rate = figure.get("rows_per_s") or figure.get("msgs_per_s")
                    log(f"raw {name}: {rate:,.0f}/s")
        if "sqlite" in only:
            results["sqlite"] = scenario_direct("sqlite", sqlite_env, args.port, args, 1)
        if "pg" in only:
            results["pg"] = scenario_direct("pg", pg_env, args.port + 1, args, 2)
        if "queue" in only:
            results["queue"] = scenario_queue(queue_env, args.port + 2, args, 3)
        if "track" in only:
            results["track"] = scenario_track(queue_env, args.port + 3, args, 4)
        if "disk" in only:
            log(f"disk: {args.disk_rows:,} events into the table before and after partitioning")
            results["disk"] = {**raw_pg_disk(args.pg_url, args.disk_rows), "load_average_after": load_average()}
            log(f"disk: {results['disk']}")
        if "backfill" in only:
            results["backfill"] = scenario_backfill(pg_env, args.port + 4, args, 5)
        if "seed" in only:
            results["seed"] = scenario_seed()
        if "compat" in only:
            results["compat"] = _compat(args, pg_env if args.compat_db == "pg" else sqlite_env)
    finally:
        if needs_pg and not args.keep_db:
            pg_drop(args.pg_url)
        if needs_pg:
            redis_cleanup(args.redis_url)
    results["machine"]["uptime_after"] = subprocess.getoutput("uptime").strip()
    results["summary"] = report(results)
    (VAR / "ingest-results.json").write_text(json.dumps(results, indent=2))
    print()
    for line in results["summary"]:
        print(line)
    print(f"\nmachine: {os.cpu_count()} cores; before: {results['machine']['uptime_before']}")
    print(f"after: {results['machine']['uptime_after']}; details: {VAR / 'ingest-results.json'}")


if __name__ == "__main__":
    main()
