"""What the benchmark scripts share: a gunicorn server, a fresh PostgreSQL database, process
bookkeeping from /proc, and the small statistics they report. No Django here: the scripts
measure the platform from outside, through real processes and real HTTP.

Imported as `harness` by the scripts in this folder (run as `python bench/<script>.py`, so
this folder is on `sys.path`).
"""

import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
GUNICORN = str(BIN / "gunicorn")


def log(message):
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def free_port():
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_loopback(url, what):
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"{what} must be on a loopback address (the benchmarks never load another machine): {url}")


# --- HTTP load clients ---------------------------------------------------------------------------
# The loop every load client process runs (bench/ingest.py's scenarios and its compat
# variants), and the figures of a set of clients put together.


def accepted_count(status, data):
    """The events an ingestion answer accepted: a batch's `accepted`, 1 for a stored track call."""
    if status not in (200, 201, 202):
        return 0
    body = json.loads(data)
    return body.get("accepted", 1) if isinstance(body, dict) else 1


def post_loop(port, path, headers, payloads, *, warmup_until, stop_at, host="127.0.0.1"):
    """POST the bodies `payloads` yields, one request (and connection) at a time, until
    `stop_at` (time.monotonic(), which every process shares). Requests started before
    `warmup_until` count only in `accepted_all`. Returns this client's figures."""
    latencies, statuses = [], Counter()
    accepted = accepted_all = requests = errors = 0
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        payload = next(payloads)
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("POST", path, payload, headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except OSError:
            errors += 1
            continue
        elapsed = (time.perf_counter() - started) * 1000
        count = accepted_count(resp.status, data)
        accepted_all += count
        if now < warmup_until:
            continue
        accepted += count
        requests += 1
        statuses[resp.status] += 1
        latencies.append(elapsed)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "latencies": latencies,
        "statuses": dict(statuses),
        "accepted": accepted,
        "accepted_all": accepted_all,
        "requests": requests,
        "errors": errors,
    }


def load_summary(parts, duration):
    """The figures of `post_loop`'s clients (`parts`) over `duration` seconds, together."""
    latencies = [x for part in parts for x in part["latencies"]]
    statuses = Counter()
    for part in parts:
        statuses.update(part["statuses"])
    accepted = sum(p["accepted"] for p in parts)
    requests = sum(p["requests"] for p in parts)
    return {
        "clients": len(parts),
        "duration_s": duration,
        "requests": requests,
        "accepted": accepted,
        "accepted_incl_warmup": sum(p["accepted_all"] for p in parts),
        "events_per_s": accepted / duration,
        "requests_per_s": requests / duration,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": sum(p["errors"] for p in parts),
        "client_cpu_s": round(sum(p["client_cpu_s"] for p in parts), 2),
        "load_average_after": load_average(),
    }


# --- PostgreSQL --------------------------------------------------------------------------------


def migrate(env):
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, capture_output=True
    )


def pg_admin(url, sql):
    import psycopg

    parts = urlsplit(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def pg_recreate(url):
    name = urlsplit(url).path.lstrip("/")
    pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(url, f'CREATE DATABASE "{name}"')


def pg_drop(url):
    name = urlsplit(url).path.lstrip("/")
    pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes ---------------------------------------------------------------------------------


def process_table():
    """{pid: (ppid, cpu seconds)} for every process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return stats


def process_tree(root_pid, table=None):
    """[(pid, parent pid)] of `root_pid` and its descendants, parents before children."""
    table = process_table() if table is None else table
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [(root_pid, None)]
    while todo:
        pid, parent = todo.pop(0)
        tree.append((pid, parent))
        todo.extend((child, pid) for child in sorted(children.get(pid, [])))
    return tree


def _smaps_kib(text, field):
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(field + ":"))


def memory_mb(pid):
    """{"rss_mb", "pss_mb", "uss_mb"} of `pid` from /proc (OSError when it is gone). RSS
    counts pages shared with forked relatives once per process; PSS splits them; USS is
    what only this process holds."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        "rss_mb": _smaps_kib(status, "VmRSS") / 1024,
        "pss_mb": _smaps_kib(rollup, "Pss") / 1024,
        "uss_mb": (_smaps_kib(rollup, "Private_Clean") + _smaps_kib(rollup, "Private_Dirty")) / 1024,
    }


def command_line(pid):
    """The command line of `pid` as one string ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def rss_kib(pid):
    """Resident set size of `pid` in KiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def spawn(cmd, env, logfile):
    """Start `cmd` in its own session (Ctrl-C in the terminal does not reach it: whoever
    started it stops it, in order), output appended to `logfile`."""
    with open(logfile, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc, sig=signal.SIGTERM, timeout=30):
    """Signal the process group `proc` leads, wait, and SIGKILL it if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def wait_http_ok(port, path="/health", timeout=60, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before answering {path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {path} within {timeout} s")


# The throughput benchmarks' gunicorn: a deep accept queue, and a long timeout so a slow
# request under full load is measured rather than killed.
THROUGHPUT_OPTIONS = ("--backlog", "2048", "--timeout", "120", "--log-level", "warning")


class Server:
    """`gunicorn usage_platform.wsgi` on 127.0.0.1:`port` (sync workers) with `options`, its
    log in `log_dir`."""

    def __init__(self, name, env, port, workers, log_dir, options=THROUGHPUT_OPTIONS):
        self.name, self.env, self.port, self.workers, self.log_dir = name, env, port, workers, Path(log_dir)
        self.options = list(options)
        self.proc = None

    def __enter__(self):
        # Flags after the options: they override a --config file's bind and workers.
        cmd = [GUNICORN, *self.options, "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)]
        cmd.append("usage_platform.wsgi")
        logfile = self.log_dir / f"gunicorn-{self.name}.log"
        self.proc = spawn(cmd, self.env, logfile)
        try:
            wait_http_ok(self.port, proc=self.proc, what=f"gunicorn (see {logfile})")
        except BaseException:
            self.__exit__()
            raise
        return self

    def worker_pids(self):
        return sorted(pid for pid, (ppid, _) in process_table().items() if ppid == self.proc.pid)

    def __exit__(self, *exc):
        stop(self.proc)  # the group started above: master + its workers
