"""Soak: ten minutes of steady mixed ingestion and dashboard load on PostgreSQL against the
production shape of the stack, started by this script; reports errors, latency per endpoint,
events acknowledged vs stored, and the RSS growth of every web worker and consumer.

    .venv/bin/python bench/soak.py                       # 10 minutes, queue mode (~13 min in all)
    .venv/bin/python bench/soak.py --duration 60         # a short validation run
    .venv/bin/python bench/soak.py --mode direct --keep-db

It starts, on 127.0.0.1 only: a Redis with AOF persistence on a free port (queue mode needs
persistence), a fresh PostgreSQL database (`up_soak_bench`, dropped at the end unless
`--keep-db`), gunicorn with the project's settings (DEBUG off, its own SECRET_KEY), in queue
mode `manage.py consume_events` processes, and a Celery worker. It registers `--orgs`
organisations through the API, creates an ingestion key for each, primes each with one
batch and a rollup, then runs the load for `--duration` seconds (see soak_load.py):
1,000-event batches and single `track` events with the keys, dashboard readers on the
analytics and insights APIs (JWT) and the main pages (session), each at a steady rate, and
`analytics.rollup_today` sent to the worker every `--rollup-every` seconds, as beat does
hourly in production, so the dashboard caches are invalidated under load. RSS is sampled
every `--sample-every` seconds; the baseline is the sample at the end of `--warmup`.
After the load, the consumers drain the stream and the rows stored are compared with the
events acknowledged.

Everything it writes stays in var/bench/soak-<port>/ (logs, soak-results.json; the Redis
data is removed at the end). Every process it started is stopped on exit, Ctrl-C included.
"""

import argparse
import json
import multiprocessing as mp
import os
import queue
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests
import soak_load
import soak_report
from harness import ROOT, log, require_loopback
from soak_stack import STREAM, Stack, log_errors, rollup_times, stored_per_org, task_failures

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/up_soak_bench"
PASSWORD = "Soak-Password-2026!"


def register_orgs(base, n):
    """Each organisation registered through the API (its admin signs up) with one key."""
    orgs = []
    for i in range(n):
        email = f"soak-admin-{i + 1}@soak.example"
        body = {"email": email, "password": PASSWORD, "organization_name": f"Soak Org {i + 1}"}
        for _ in range(10):
            resp = requests.post(f"{base}/api/v1/auth/register", json=body, timeout=30)
            if resp.status_code != 429:
                break
            time.sleep(float(resp.headers.get("Retry-After", 5)))
        if resp.status_code != 201:
            raise RuntimeError(f"register {email}: HTTP {resp.status_code} {resp.text[:300]}")
        data = resp.json()
        auth = {"Authorization": f"Bearer {data['access_token']}"}
        key = requests.post(f"{base}/api/v1/org/api-keys", json={"name": "soak"}, headers=auth, timeout=30)
        if key.status_code != 201:
            raise RuntimeError(f"api key for {email}: HTTP {key.status_code} {key.text[:300]}")
        orgs.append(
            {"id": data["organization"]["id"], "email": email, "key": key.json()["key"], "jwt": data["access_token"]}
        )
    return orgs


def prime(stack, orgs, args):
    """One batch per organisation naming every feature and the first 1,000 end users (the
    readers ask for them), stored, then one rollup: the readers start on data."""
    acknowledged = 0
    now = datetime.now(UTC).isoformat()
    known = min(1000, args.end_users)
    for org in orgs:
        events = [
            {"feature": soak_load.FEATURES[i % len(soak_load.FEATURES)], "user_id": soak_load.user_id(i % known),
             "session_duration": 30, "timestamp": now, "metadata": {"source": "soak-prime"}}
            for i in range(soak_load.BATCH)
        ]  # fmt: skip
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {org['key']}"}
        status, data = soak_load.post_json(
            args.port, "/api/v1/events/batch", json.dumps({"events": events}).encode(), headers
        )
        if status not in (200, 202):
            raise RuntimeError(f"priming batch: HTTP {status} {data[:300]}")
        org["primed"] = soak_load.BATCH
        acknowledged += soak_load.BATCH
    _wait(lambda: sum(stored_per_org(args.pg_url).values()) >= acknowledged, 120, "the priming events to be stored")
    done = len(rollup_times(stack.var))
    stack.send_rollup()
    _wait(lambda: len(rollup_times(stack.var)) > done, 180, "the first rollup")
    return known


HEAVY_LIBRARIES = ("numpy",)


def warm_workers(stack, org, known_users, args):
    """Every gunicorn worker imports numpy with the first whole-organisation forecast it
    computes (the usage-prediction API without a feature, over VECTORISED_FROM features:
    insights/forecast.py; ~25 MB) and compiles each template on first use. A worker that had
    not yet done so at the RSS baseline would show it as growth, so before the load every
    reader's request is sent `--workers` times at once (a sync worker serves one at a time:
    the copies spread over the workers) until every worker's memory maps show numpy."""
    base = f"http://127.0.0.1:{args.port}"
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {org['jwt']}"
    browser = soak_load.page_login(base, org["email"], PASSWORD)
    paths = soak_load.reader_paths(known_users)
    calls = [(api if kind == "api" else browser, path) for _, path, kind in paths for _ in range(args.workers)]
    for _ in range(5):
        if not stack.workers_without(HEAVY_LIBRARIES):
            return True
        with ThreadPoolExecutor(args.workers * 2) as pool:
            list(pool.map(lambda call: call[0].get(base + call[1], allow_redirects=False, timeout=120), calls))
    return not stack.workers_without(HEAVY_LIBRARIES)


def _wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting {seconds} s for {what}")
        time.sleep(0.5)


def client_specs(orgs, known_users, args):
    specs, n = [], len(orgs)
    common = {"port": args.port, "end_users": args.end_users, "new_user_share": args.new_user_share}
    common["late_share"] = args.late_share
    for i in range(args.batch_clients):
        org = orgs[i % n]
        specs.append(("sender", {**common, "kind": "batch", "interval": args.batch_interval, "org": org["id"],
                                 "key": org["key"]}))  # fmt: skip
    for i in range(args.track_clients):
        org = orgs[(args.batch_clients + i) % n]
        specs.append(("sender", {**common, "kind": "track", "interval": 1 / args.track_rate, "org": org["id"],
                                 "key": org["key"]}))  # fmt: skip
    for i in range(args.readers):
        org = orgs[i % n]
        specs.append(("reader", {"port": args.port, "interval": 1 / args.reader_rate, "org": org["id"],
                                 "email": org["email"], "password": PASSWORD, "known_users": known_users}))  # fmt: skip
    for client, (_, spec) in enumerate(specs, 1):
        spec["client"] = spec["seed"] = client
    return specs


def run_load(stack, specs, args):
    """Runs the clients for `--duration` s while sampling RSS and the backlog and sending the
    periodic rollup; returns (client results, samples, baseline RSS, end RSS, failed clients)."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    t0 = time.monotonic()
    stop_at = t0 + args.duration
    warm_at = t0 + args.warmup
    procs = [ctx.Process(target=getattr(soak_load, fn), args=(spec, t0, stop_at, results)) for fn, spec in specs]
    stack.clients = procs
    for proc in procs:
        proc.start()
    samples, baseline = [], None
    next_sample, next_rollup = t0, t0 + args.rollup_every
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if baseline is None and now >= warm_at:
            samples.append(stack.sample(t0))
            baseline = samples[-1]["rss"]
            log(f"warm-up over: RSS baseline taken ({len(baseline)} processes)")
        if now >= next_sample:
            samples.append(stack.sample(t0))
            next_sample += args.sample_every
        if now >= next_rollup:
            stack.send_rollup()
            next_rollup += args.rollup_every
        dead = stack.dead()
        if dead:
            raise RuntimeError(f"processes exited during the load: {', '.join(dead)}")
        time.sleep(0.2)
    samples.append(stack.sample(t0))
    end = samples[-1]["rss"]
    # Read before joining: a client blocks on exit until the queue has taken its records.
    parts = []
    deadline = time.monotonic() + 180
    while len(parts) < len(procs) and time.monotonic() < deadline:
        try:
            parts.append(results.get(timeout=1))
        except queue.Empty:
            if not any(proc.is_alive() for proc in procs) and results.empty():
                break
    for proc in procs:
        proc.join(5)
    reported = {part["client"] for part in parts}
    failed = [spec["client"] for _, spec in specs if spec["client"] not in reported]
    return parts, samples, baseline or samples[0]["rss"], end, failed


def drain(stack, acknowledged, args):
    """Waits until the rows stored reach the events acknowledged (the consumers have caught
    up), or nothing has moved for 30 s with the stream empty, or `--drain-timeout`."""
    started = time.monotonic()
    last, still_since = None, time.monotonic()
    while True:
        stored = sum(stored_per_org(args.pg_url).values())
        if stored >= acknowledged:
            break
        now = time.monotonic()
        if stored != last:
            last, still_since = stored, now
        backlog = stack.redis_client.xlen(STREAM) if args.mode == "queue" else 0
        if now - started > args.drain_timeout or (backlog == 0 and now - still_since > 30):
            log(f"drain: stopped waiting with {acknowledged - stored:,} events missing (stream length {backlog})")
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def summarise(args, orgs, parts, samples, baseline, end, failed, drain_s, stack):
    records = [record for part in parts for record in part["records"]]
    endpoints = soak_report.endpoints(records, args.warmup)
    errors = sum(e["errors"] for e in endpoints.values()) + len(failed)
    stored = stored_per_org(args.pg_url)
    acknowledged = {org["id"]: org["primed"] for org in orgs}
    for part in parts:
        acknowledged[part["org"]] += sum(r.acknowledged for r in part["records"])
    rss, changed = soak_report.rss_growth(baseline, end)
    times = rollup_times(stack.var)
    dead_letters = stack.redis_client.xlen(f"{STREAM}:dead") if args.mode == "queue" else 0
    result = {
        "totals": {
            "requests": len(records),
            "errors": errors,
            "error_rate_pct": round(100 * errors / len(records), 3) if records else None,
            "throttled": sum(e["throttled"] for e in endpoints.values()),
            "requests_per_s": round(len(records) / args.duration, 1),
            "events_per_s": round(sum(r.acknowledged for r in records) / args.duration),
            "clients_failed": failed,
            # Queue mode writes directly (200/201, not 202) when its Redis is unreachable or
            # not persistent: then this run did not measure the queue.
            "direct_writes_in_queue_mode": sum(
                1 for r in records if r.endpoint.startswith("POST events/") and r.status in (200, 201)
            )
            if args.mode == "queue"
            else 0,
            "schedule_slips": sum(part["slipped"] for part in parts),
            "client_cpu_s": round(sum(part["cpu_s"] for part in parts), 1),
        },
        "endpoints": endpoints,
        "events": {
            "acknowledged": sum(acknowledged.values()),
            "primed": sum(org["primed"] for org in orgs),
            "stored": sum(stored.values()),
            "refused": sum(e["events_refused"] for e in endpoints.values()),
            "per_org": {str(k): {"acknowledged": v, "stored": stored.get(k, 0)} for k, v in acknowledged.items()},
            "drain_s": drain_s,
            "dead_lettered": dead_letters,
        },
        "rss": rss,
        "processes_replaced": changed,
        "rollups": {
            "count": len(times),
            "p50_s": round(statistics.median(times), 2) if times else None,
            "max_s": round(max(times), 2) if times else None,
            "failures": task_failures(stack.var),
        },
        "log_errors": log_errors(stack.var),
        "timeline": soak_report.timeline(records, samples, args.duration),
        "error_samples": [s for part in parts for s in part["error_samples"]],
        "samples": samples,
    }
    result["verdicts"] = soak_report.verdicts(result)
    return result


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline (at most duration/4)")
    p.add_argument("--mode", choices=("queue", "direct"), default="queue", help="ingestion mode (default queue)")
    p.add_argument("--port", type=int, default=8700, help="gunicorn's port; names var/bench/soak-<port>/")
    p.add_argument("--pg-url", default=DEFAULT_PG, help="database to create fresh (dropped at the end)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--consumers", type=int, default=2, help="consume_events processes (queue mode)")
    p.add_argument("--celery-concurrency", type=int, default=1)
    p.add_argument("--orgs", type=int, default=3, help="organisations, each with its own key and admin")
    p.add_argument("--batch-clients", type=int, default=2, help="processes sending 1,000-event batches")
    p.add_argument("--batch-interval", type=float, default=2.0, help="seconds between one client's batches")
    p.add_argument("--track-clients", type=int, default=2, help="processes sending single track events")
    p.add_argument("--track-rate", type=float, default=10.0, help="track requests per second per client")
    p.add_argument("--readers", type=int, default=2, help="dashboard reader processes (JWT + session)")
    p.add_argument("--reader-rate", type=float, default=2.0, help="dashboard requests per second per reader")
    p.add_argument("--end-users", type=int, default=10_000, help="end users per organisation")
    p.add_argument("--new-user-share", type=float, default=0.01, help="share of events from a brand-new user")
    p.add_argument("--late-share", type=float, default=0.01, help="share of events stamped yesterday")
    p.add_argument("--rollup-every", type=float, default=60.0, help="seconds between rollups")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the consumers at the end")
    args = p.parse_args()
    args.warmup = min(args.warmup, args.duration / 4)
    require_loopback(args.pg_url, "--pg-url")
    return args


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    args = parse_args()
    var = ROOT / "var" / "bench" / f"soak-{args.port}"
    var.mkdir(parents=True, exist_ok=True)
    for old in var.glob("*.log"):  # the log scan must see this run's lines only
        old.unlink()
    signal.signal(signal.SIGTERM, _interrupted)  # `kill` stops everything too, like Ctrl-C
    result = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "uptime_before": subprocess.getoutput("uptime").strip()},
        "args": vars(args),
    }
    log(f"soak: {args.duration:g} s, {args.mode} mode; machine: {result['machine']['uptime_before']}")
    stack = Stack(args, var)
    interrupted = False
    try:
        stack.start()
        orgs = register_orgs(f"http://127.0.0.1:{args.port}", args.orgs)
        known_users = prime(stack, orgs, args)
        if warm_workers(stack, orgs[0], known_users, args):
            log(f"every gunicorn worker has served every reader request and loaded {', '.join(HEAVY_LIBRARIES)}")
        else:
            missing = stack.workers_without(HEAVY_LIBRARIES)
            log(f"gunicorn workers {missing} have not loaded {', '.join(HEAVY_LIBRARIES)}: their RSS may jump later")
        log(f"{len(orgs)} organisations registered and primed; load for {args.duration:g} s")
        specs = client_specs(orgs, known_users, args)
        parts, samples, baseline, end, failed = run_load(stack, specs, args)
        acknowledged = sum(org["primed"] for org in orgs) + sum(r.acknowledged for p in parts for r in p["records"])
        log(f"load over; waiting for {acknowledged:,} acknowledged events to be stored")
        drain_s = drain(stack, acknowledged, args)
        result.update(summarise(args, orgs, parts, samples, baseline, end, failed, drain_s, stack))
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        interrupted = True
    finally:
        stack.close()
    if interrupted:
        sys.exit(130)
    result["machine"]["uptime_after"] = subprocess.getoutput("uptime").strip()
    result["markdown"] = soak_report.markdown(result)
    out = var / "soak-results.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print()
    print("\n".join(result["markdown"]))
    print(f"\nmachine: {os.cpu_count()} cores; before: {result['machine']['uptime_before']}")
    print(f"after: {result['machine']['uptime_after']}; details: {out}")
    sys.exit(0 if all(v for k, v in result["verdicts"].items() if k != "worst_rss_growth_pct") else 1)


if __name__ == "__main__":
    main()
