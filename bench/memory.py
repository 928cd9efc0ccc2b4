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
   chart-data, usage-prediction): the requests that load numpy, pandas and scipy. The
   tree is also sampled every second throughout, for the peak total and the peak of each
   kind of process (a Celery pool process peaks while it runs the detectors, then is
   replaced: CELERY_WORKER_MAX_MEMORY_PER_CHILD).

Prints Markdown tables for docs/benchmarks.md and writes var/bench/memory/results.json.
RSS counts pages shared between a parent and its forked children once per process; PSS
splits them, so the PSS column adds up to what the stack really occupies.
Traffic goes to 127.0.0.1 only.
"""

import argparse
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VAR = ROOT / "var" / "bench" / "memory"
DEMO_PASSWORD = "movielens-demo"
DEMO_EMAIL = "admin@org-1.demo"


def log(message):
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(args) -> dict:
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
    manage(env, "rollup", "--all-days")
    manage(env, "detect_anomalies", "--days", "30")


# --- /proc ------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _kib(text: str, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def process_memory(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return {
        "pid": pid,
        "cmd": cmdline,
        "rss_mb": _kib(status, "VmRSS") / 1024,
        "pss_mb": _kib(rollup, "Pss") / 1024,
        "uss_mb": (_kib(rollup, "Private_Clean") + _kib(rollup, "Private_Dirty")) / 1024,
    }


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
    tree = _children()
    rows, todo = [], [(root_pid, None)]
    while todo:
        pid, parent_role = todo.pop(0)
        try:
            row = process_memory(pid)
        except OSError:
            continue
        row["role"] = role_of(row["cmd"], parent_role)
        rows.append(row)
        todo.extend((child, row["role"]) for child in sorted(tree.get(pid, [])))
    return rows


# --- HTTP -------------------------------------------------------------------------------------


class Session:
    """A cookie-keeping client for the pages plus a bearer token for the API."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = None
        self.key = None
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()

    def request(self, method, path, *, data=None, headers=None, form=None):
        headers = dict(headers or {})
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=120) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, payload

    def api(self, method, path, data=None):
        return self.request(method, "/api/v1/" + path, data=data, headers={"Authorization": f"Bearer {self.token}"})

    def sign_in(self, email, password):
        self.request("GET", "/login/")
        csrf = next(c.value for c in self.jar if c.name == "csrftoken")
        status, _ = self.request(
            "POST",
            "/login/",
            form={"username": email, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": self.base + "/login/"},
        )
        status, body = self.request("POST", "/api/v1/auth/login", data={"username": email, "password": password})
        if status != 200:
            raise RuntimeError(f"API login answered {status}: {body[:200]!r}")
        self.token = json.loads(body)["access_token"]
        status, body = self.api("POST", "org/api-keys", {"name": "memory bench"})
        self.key = json.loads(body)["key"]


def wait_healthy(base: str, launcher: subprocess.Popen, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if launcher.poll() is not None:
            raise RuntimeError("the launcher exited before the web server answered")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the web server did not answer /health in time")


def request_plan(session: Session, env, *, insights: bool) -> list:
    """(kind, method, path, body) tuples covering the pages, the API and ingestion."""
    _, body = session.api("GET", "analytics/feature-usage?page_size=5")
    features = json.loads(body)["results"]
    _, body = session.api("GET", "analytics/top-users?limit=3")
    users = json.loads(body)["results"] if body.startswith(b"{") else json.loads(body)
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


def warm_up(session: Session, plan: list, count: int, threads: int = 4):
    position = iter(range(count))
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            kind, method, path, body = plan[index % len(plan)]
            if kind == "page":
                session.request(method, path)
            elif kind == "api":
                session.api(method, path, body)
            else:
                session.request(method, "/api/v1/" + path, data=body, headers={"X-API-Key": session.key})

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_hourly_rollup(env, log_path: Path, orgs: int = 3, timeout: float = 300.0):
    """Send the hourly rollup to the broker as beat does, and wait until the worker has run it
    and the anomaly detection it hands over to, for every organisation."""
    done_before = log_path.read_text(errors="replace").count("insights.after_rollup[")
    subprocess.run(
        [str(Path(PYTHON).parent / "celery"), "-A", "usage_platform", "call", "analytics.rollup_today"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    pattern = re.compile(r"Task insights\.after_rollup\[[^\]]+\] succeeded")
    while time.time() < deadline:
        text = log_path.read_text(errors="replace")
        if len(pattern.findall(text)) >= done_before + orgs:
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
    lines.append(
        f"| **total** | | **{sum(r['rss_mb'] for r in rows):.1f}** | **{sum(r['pss_mb'] for r in rows):.1f}** "
        f"| **{sum(r['uss_mb'] for r in rows):.1f}** |"
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="warm-up requests per round")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (the launcher's default)")
    parser.add_argument("--limit", type=int, default=30000, help="events seeded (make demo's DEMO_LIMIT)")
    parser.add_argument("--keep", action="store_true", help="keep var/bench/memory/ afterwards")
    args = parser.parse_args()

    env = stack_env(args)
    prepare(env, args)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = VAR / "stack.log"
    command = [PYTHON, "scripts/run_demo.py", "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    log("starting " + " ".join(command[1:]))
    with log_path.open("w") as log_file:
        launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    results = {"machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]}, "rounds": []}
    sampler = Sampler(launcher.pid)
    try:
        wait_healthy(base, launcher)
        sampler.start()
        time.sleep(3)  # let the worker and beat finish starting
        results["rounds"].append({"name": "idle after start", "processes": stack_memory(launcher.pid)})
        session = Session(base)
        session.sign_in(DEMO_EMAIL, DEMO_PASSWORD)
        for name, insights in (("pages, analytics API, ingestion", False), ("… plus the insights endpoints", True)):
            plan = request_plan(session, env, insights=insights)
            started = time.time()
            warm_up(session, plan, args.requests)
            elapsed = time.time() - started
            log(f"{name}: {args.requests} requests in {elapsed:.1f} s, statuses {session.statuses}")
            if not insights:
                run_hourly_rollup(env, log_path)
                log("the worker ran the hourly rollup and the anomaly hand-over")
            results["rounds"].append(
                {
                    "name": name,
                    "requests": args.requests,
                    "statuses": dict(session.statuses),
                    "processes": stack_memory(launcher.pid),
                    "load_average": os.getloadavg(),
                }
            )
    finally:
        sampler.stopped.set()
        results["peaks"] = {"rss_mb": sampler.peak_rss, "pss_mb": sampler.peak_pss, "by_role": sampler.peak_by_role}
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
    (VAR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nnproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for round_ in results["rounds"]:
        print(f"\n### {round_['name']}\n")
        print(table(round_["processes"]))
    peaks = results["peaks"]
    print(f"\nPeak while sampling (every second): total RSS {peaks['rss_mb']:.1f} MB, PSS {peaks['pss_mb']:.1f} MB")
    for role, rss in sorted(peaks["by_role"].items()):
        print(f"- {role}: {rss:.1f} MB RSS")
    bad = {status: n for status, n in session.statuses.items() if status >= 400}
    if bad:
        print(f"\nerror statuses during warm-up: {bad}")
    if not args.keep:
        shutil.copy(VAR / "results.json", VAR.parent / "memory-results.json")
        shutil.rmtree(VAR, ignore_errors=True)


if __name__ == "__main__":
    main()
