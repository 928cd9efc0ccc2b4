"""Memory of the embedded demo stack: start it as `make demo` does, warm it up over real HTTP,
report the resident memory of every process.

    .venv/bin/python bench/memory.py [--requests 300] [--workers 2] [--limit 30000] [--keep]

Steps:
1. a fresh SQLite database under var/bench/memory/, seeded and rolled up like `make demo`
   (migrate, seed_movielens, rollup --all-days, detect_anomalies);
2. the real launcher, `scripts/run_demo.py`, on a free loopback port: gunicorn (web
   workers), the Celery worker and beat;
3. warm-up: `--requests` requests from four client threads over the pages (dashboard,
   features, feature detail, users, user detail, retention, funnels, settings), the analytics
   API and ingestion (batches and single events), signed in as a demo admin;
4. one hourly rollup sent to the worker as beat would send it (`analytics.rollup_today`,
   then `insights.after_rollup` per organisation), waited for;
5. RSS, PSS and USS of every process of the launcher's tree (`/proc`), then the same after
   a second round that adds the insights endpoints (Insights page, forecast fragment,
   chart-data, usage-prediction): the whole-organisation prediction loads numpy (the rest
   of the insights is plain Python). The tree is also
   sampled every second throughout, for the peak total and the peak of each kind of process
   (a Celery pool process peaks while it runs the detectors, then is replaced:
   CELERY_WORKER_MAX_MEMORY_PER_CHILD).

Prints Markdown tables for docs/benchmarks.md and writes var/bench/memory/results.json.
RSS counts pages shared between a parent and its forked children once per process; PSS
splits them, so the PSS column adds up to what the stack really occupies.
Traffic goes to 127.0.0.1 only. Process start and stop, /proc reading: harness.py.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import requests
from harness import (
    BIN,
    PYTHON,
    ROOT,
    command_line,
    free_port,
    load_average,
    log,
    memory_mb,
    process_tree,
    spawn,
    stop,
    wait_http_ok,
)
from soak_load import jwt_login, page_login

VAR = ROOT / "var" / "bench" / "memory"
DEMO_PASSWORD = "movielens-demo"
DEMO_EMAIL = "admin@org-1.demo"
CLIENT_THREADS = 4
POOL_SETTLE_SECONDS = 5


def stack_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "INGEST_MODE")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "usage_platform.settings",
            "DATABASE_URL": f"sqlite:///{VAR / 'db.sqlite3'}",
            "CACHE_DIR": str(VAR / "cache"),
            "CELERY_BROKER_DIR": str(VAR / "broker"),
            "HEARTBEAT_DIR": str(VAR / "heartbeat"),
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    # Settings refuse to start without a key when DEBUG is off.
    env.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(32))
    return env


def manage(env, *argv):
    log("manage.py " + " ".join(argv))
    out = subprocess.run([PYTHON, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith(("MovieLens", "Source", "Seeded")):  # which data the demo got
            log("  " + line)


def prepare(env, args):
    shutil.rmtree(VAR, ignore_errors=True)
    # The filesystem broker's folders (the launcher creates only the default ones under var/).
    for folder in ("queue", "processed"):
        (VAR / "broker" / folder).mkdir(parents=True)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "seed_movielens", "--orgs", "3", "--limit", str(args.limit), "--recent-days", "45")
    manage(env, "rollup", "--all-days", "--no-after-rollup")
    manage(env, "detect_anomalies", "--days", "30")


def role_of(cmd: str, parent_role: str | None) -> str:
    if "run_demo.py" in cmd:
        return "launcher"
    if "gunicorn" in cmd:
        return "web worker" if parent_role == "gunicorn master" else "gunicorn master"
    if " beat" in cmd:
        return "celery beat"
    if " worker" in cmd:
        return "celery pool child" if parent_role == "celery worker" else "celery worker"
    if "consume_events" in cmd:
        return "consumer"
    return "other"


def stack_memory(root_pid: int) -> list[dict]:
    """One row per live process of the launcher's tree: pid, role, command, RSS/PSS/USS."""
    rows, roles = [], {}
    for pid, parent in process_tree(root_pid):
        cmd = command_line(pid)
        try:
            row = {"pid": pid, "cmd": cmd, **memory_mb(pid)}
        except OSError:  # exited between the listing and the read
            continue
        row["role"] = roles[pid] = role_of(cmd, roles.get(parent))
        rows.append(row)
    return rows


class Client:
    """The demo admin signed in twice, as a browser (session cookie) and as an API client
    (JWT), plus an ingestion key; counts every answer's status."""

    def __init__(self, base: str):
        self.base = base
        self.browser = page_login(base, DEMO_EMAIL, DEMO_PASSWORD)
        access, _ = jwt_login(base, DEMO_EMAIL, DEMO_PASSWORD)
        self.api_session = requests.Session()
        self.api_session.headers["Authorization"] = f"Bearer {access}"
        answer = self.api_session.post(f"{base}/api/v1/org/api-keys", json={"name": "memory bench"}, timeout=30)
        answer.raise_for_status()
        self.ingest_session = requests.Session()
        self.ingest_session.headers["X-API-Key"] = answer.json()["key"]
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()

    def send(self, kind: str, method: str, path: str, body=None) -> requests.Response:
        session = {"page": self.browser, "api": self.api_session, "ingest": self.ingest_session}[kind]
        url = self.base + (path if kind == "page" else "/api/v1/" + path)
        answer = session.request(method, url, json=body, allow_redirects=False, timeout=120)
        with self.lock:
            self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
        return answer


def request_plan(client: Client, *, insights: bool) -> list:
    """(kind, method, path, body) tuples covering the pages, the API and ingestion."""
    features = client.send("api", "GET", "analytics/feature-usage?page_size=5").json()["results"]
    users = client.send("api", "GET", "analytics/top-users?limit=3").json()
    users = users["results"] if isinstance(users, dict) else users
    feature_id = features[0]["feature_id"]
    keys = [f["feature_key"] for f in features[:3]]
    user_id = urllib.parse.quote(users[0]["user_id"], safe="")
    pages = [
        "/",
        "/?gender=F",
        "/features/",
        f"/features/{feature_id}/",
        "/users/",
        f"/users/{user_id}/",
        "/retention/",
        "/funnels/?" + "&".join(f"step={k}" for k in keys),
        "/settings/",
        "/settings/members/",
        "/settings/api-keys/",
    ]
    api = [
        "analytics/usage-summary",
        "analytics/feature-usage",
        "analytics/user-activity",
        "analytics/timeseries?metric=events&interval=day",
        "analytics/timeseries?metric=active_users&interval=week",
        "analytics/retention",
        "analytics/top-users",
        f"analytics/funnel?steps={','.join(keys)}",
        "ai/anomalies",
        "ai/usage-insights",
        "auth/me",
    ]
    if insights:
        pages += ["/insights/", f"/insights/forecast/{feature_id}/"]
        api += ["ai/chart-data", "ai/usage-prediction?days=14"]
    plan = [("page", "GET", path, None) for path in pages] + [("api", "GET", path, None) for path in api]
    events = [
        {"feature": keys[i % len(keys)], "user_id": f"bench-{i % 40}", "session_duration": 30} for i in range(100)
    ]
    plan += [("ingest", "POST", "events/batch", {"events": events})] * 3
    plan += [("ingest", "POST", "events/track", events[0])] * 3
    return plan


def warm_up(client: Client, plan: list, count: int):
    """`count` requests of `plan`, in order and round again, from CLIENT_THREADS threads."""
    position = iter(range(count))
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            client.send(*plan[index % len(plan)])

    threads = [threading.Thread(target=run) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_hourly_rollup(env, log_path: Path, orgs: int = 3, timeout: float = 300.0):
    """Send the hourly rollup to the broker as beat does, and wait until the worker has run it
    and the anomaly detection it hands over to, for every organisation."""
    pattern = re.compile(r"Task insights\.after_rollup\[[^\]]+\] succeeded")
    done_before = len(pattern.findall(log_path.read_text(errors="replace")))
    subprocess.run(
        [str(BIN / "celery"), "-A", "usage_platform", "call", "analytics.rollup_today"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(pattern.findall(log_path.read_text(errors="replace"))) >= done_before + orgs:
            return
        time.sleep(1)
    raise RuntimeError("the worker did not finish the rollup hand-over in time")


class Sampler(threading.Thread):
    """Samples the stack's memory every second: the peak total RSS and PSS, and the peak RSS
    of each kind of process."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.stopped = threading.Event()
        self.peak_rss = self.peak_pss = 0.0
        self.peak_by_role: dict[str, float] = {}

    def run(self):
        while not self.stopped.wait(1.0):
            rows = stack_memory(self.root_pid)
            self.peak_rss = max(self.peak_rss, sum(r["rss_mb"] for r in rows))
            self.peak_pss = max(self.peak_pss, sum(r["pss_mb"] for r in rows))
            for row in rows:
                self.peak_by_role[row["role"]] = max(self.peak_by_role.get(row["role"], 0.0), row["rss_mb"])


def table(rows: list[dict]) -> str:
    lines = ["| process | pid | RSS MB | PSS MB | USS MB |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['role']} | {row['pid']} | {row['rss_mb']:.1f} | {row['pss_mb']:.1f} | {row['uss_mb']:.1f} |"
        )
    totals = " | ".join(f"**{sum(r[key] for r in rows):.1f}**" for key in ("rss_mb", "pss_mb", "uss_mb"))
    lines.append(f"| **total** | | {totals} |")
    return "\n".join(lines)


def measure(args, env, results) -> dict[int, int]:
    """Start the launcher, warm it up round by round, stop it (as Ctrl-C in `make demo`
    does: SIGINT to its process group); returns the statuses of every warm-up request."""
    port = free_port()
    log_path = VAR / "stack.log"
    command = [PYTHON, "scripts/run_demo.py", "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    log("starting " + " ".join(command[1:]))
    launcher = spawn(command, env, log_path)
    sampler = Sampler(launcher.pid)
    try:
        wait_http_ok(port, timeout=120, proc=launcher, what=f"the demo launcher (see {log_path})")
        sampler.start()
        time.sleep(3)  # let the worker and beat finish starting
        results["rounds"].append({"name": "idle after start", "processes": stack_memory(launcher.pid)})
        client = Client(f"http://127.0.0.1:{port}")
        for name, insights in (("pages, analytics API, ingestion", False), ("… plus the insights endpoints", True)):
            plan = request_plan(client, insights=insights)
            started = time.monotonic()
            warm_up(client, plan, args.requests)
            log(f"{name}: {args.requests} requests in {time.monotonic() - started:.1f} s, statuses {client.statuses}")
            if not insights:
                run_hourly_rollup(env, log_path)
                # A pool process the detectors left above CELERY_WORKER_MAX_MEMORY_PER_CHILD
                # exits just after its task is logged; measure the worker once it has.
                time.sleep(POOL_SETTLE_SECONDS)
                log("the worker ran the hourly rollup and the anomaly hand-over")
            results["rounds"].append(
                {
                    "name": name,
                    "requests": args.requests,
                    "statuses": dict(client.statuses),
                    "processes": stack_memory(launcher.pid),
                    "load_average": load_average(),
                }
            )
        return client.statuses
    finally:
        sampler.stopped.set()
        results["peaks"] = {"rss_mb": sampler.peak_rss, "pss_mb": sampler.peak_pss, "by_role": sampler.peak_by_role}
        stop(launcher, signal.SIGINT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="warm-up requests per round")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (the launcher's default)")
    parser.add_argument("--limit", type=int, default=30000, help="events seeded (make demo's DEMO_LIMIT)")
    parser.add_argument("--keep", action="store_true", help="keep var/bench/memory/ afterwards")
    args = parser.parse_args()

    env = stack_env()
    prepare(env, args)
    results = {"machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]}, "rounds": []}
    statuses = measure(args, env, results)
    (VAR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nnproc {os.cpu_count()}, load average {load_average()}")
    for round_ in results["rounds"]:
        print(f"\n### {round_['name']}\n")
        print(table(round_["processes"]))
    peaks = results["peaks"]
    print(f"\nPeak while sampling (every second): total RSS {peaks['rss_mb']:.1f} MB, PSS {peaks['pss_mb']:.1f} MB")
    for role, rss in sorted(peaks["by_role"].items()):
        print(f"- {role}: {rss:.1f} MB RSS")
    bad = {status: n for status, n in statuses.items() if status >= 400}
    if bad:
        print(f"\nerror statuses during warm-up: {bad}")
    if not args.keep:
        shutil.copy(VAR / "results.json", VAR.parent / "memory-results.json")
        shutil.rmtree(VAR, ignore_errors=True)


if __name__ == "__main__":
    main()
