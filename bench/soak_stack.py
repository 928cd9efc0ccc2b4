"""The soak's stack (see soak.py): a Redis with AOF on a free port, a fresh PostgreSQL
database, gunicorn, `consume_events` processes and a Celery worker, all on 127.0.0.1, started
in their own sessions and stopped in order by `Stack.close()`; plus what the soak reads from
them (RSS, stream backlog, rows stored, task timings and error lines in their logs)."""

import os
import re
import secrets
import shutil
import signal
import time
from pathlib import Path

from harness import (
    BIN,
    PYTHON,
    Server,
    free_port,
    log,
    migrate,
    pg_drop,
    pg_recreate,
    process_table,
    rss_kib,
    spawn,
    stop,
)

STREAM = "usage:events"
ROLLUP_TASK = "analytics.rollup_today"
TASK_DONE = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in ([\d.]+)s")
TASK_FAILED = re.compile(r"Task (\S+)\[[^\]]+\] (raised unexpected|retry)")
# Django's "LEVEL logger", gunicorn's "[LEVEL]", Celery's "LEVEL/process".
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback")


class Stack:
    """Redis, the database, gunicorn, consumers and a Celery worker; `close()` stops what
    was started, in the reverse order, and is safe to call at any point."""

    def __init__(self, args, var):
        self.args, self.var = args, var
        self.redis = self.server = self.celery = None
        self.consumers, self.clients = [], []
        self.db_created = False
        self.celery_app = None
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = self._env()

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "INGEST_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "usage_platform.settings",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "DEBUG": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.args.pg_url,
                "REDIS_URL": self.redis_url,
                "INGEST_MODE": self.args.mode,
                "INGEST_STREAM": STREAM,
                "LOG_LEVEL": "WARNING",
                "HF_HUB_OFFLINE": "1",
                # Nothing leaves the machine: the narrative falls back to its heuristic and
                # alert e-mails go nowhere.
                "GEMINI_API_KEY": "",
                "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
                # Recycling workers would hide a slow leak, which is what the soak looks for.
                "GUNICORN_MAX_REQUESTS": "0",
                "CACHE_DIR": str(self.var / "cache"),
                "CELERY_BROKER_DIR": str(self.var / "broker"),
                "HEARTBEAT_DIR": str(self.var / "heartbeat"),
            }
        )
        return env

    def start(self):
        data = self.var / "redis"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.redis = spawn(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(data),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            self.env, self.var / "redis.log",
        )  # fmt: skip
        self.redis_client = _redis_ready(self.redis_url, self.redis)
        log(f"redis: 127.0.0.1:{self.redis_port}, appendonly {self.redis_client.config_get('appendonly')}")
        pg_recreate(self.args.pg_url)
        self.db_created = True
        migrate(self.env)
        log(f"postgresql: {self.args.pg_url} created and migrated")
        # The image's gunicorn configuration (timeout, graceful stop, access log), bound to
        # loopback; GUNICORN_MAX_REQUESTS=0 in the environment keeps a worker for the whole run.
        options = ("--config", "usage_platform/gunicorn.conf.py")
        self.server = Server("soak", self.env, self.args.port, self.args.workers, self.var, options=options)
        self.server.__enter__()
        log(f"gunicorn: {self.args.workers} workers on 127.0.0.1:{self.args.port}, {self.args.mode} mode")
        if self.args.mode == "queue":
            for i in range(self.args.consumers):
                cmd = [PYTHON, "manage.py", "consume_events", "--consumer", f"soak-{i}"]
                self.consumers.append(spawn(cmd, self.env, self.var / f"consumer-{i}.log"))
            log(f"consumers: {self.args.consumers} × manage.py consume_events")
        cmd = [str(BIN / "celery"), "-A", "usage_platform", "worker", "--loglevel", "INFO"]
        cmd += ["--concurrency", str(self.args.celery_concurrency), "--hostname", f"soak-{self.args.port}@%h"]
        self.celery = spawn(cmd, self.env, self.var / "celery-worker.log")
        log(f"celery worker: concurrency {self.args.celery_concurrency}")

    def processes(self):
        """{"role (pid N)": pid} of everything whose memory is watched."""
        table = process_table()
        named = {}

        def children(pid):
            return sorted(p for p, (ppid, _) in table.items() if ppid == pid)

        # Named by pid: a worker gunicorn replaced is another process, not the same one grown.
        for pid in children(self.server.proc.pid):
            named[f"gunicorn worker (pid {pid})"] = pid
        for proc in self.consumers:
            named[f"consumer (pid {proc.pid})"] = proc.pid
        if self.celery:
            named[f"celery worker (pid {self.celery.pid})"] = self.celery.pid
            for pid in children(self.celery.pid):
                named[f"celery pool process (pid {pid})"] = pid
        named[f"gunicorn master (pid {self.server.proc.pid})"] = self.server.proc.pid
        named[f"redis-server (pid {self.redis.pid})"] = self.redis.pid
        return named

    def workers_without(self, libraries):
        """The gunicorn workers that have not loaded every one of `libraries` (their memory
        maps show each library's extension modules once it is imported)."""
        missing = []
        for pid in self.server.worker_pids():
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            if not all(f"/{library}/" in maps for library in libraries):
                missing.append(pid)
        return missing

    def sample(self, t0):
        """RSS of every watched process and the stream backlog, `t` seconds into the load."""
        rss = {name: rss_kib(pid) for name, pid in self.processes().items()}
        backlog = self.redis_client.xlen(STREAM) if self.args.mode == "queue" else None
        return {"t": round(time.monotonic() - t0, 1), "rss": rss, "stream_backlog": backlog,
                "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip

    def send_rollup(self):
        """What beat sends hourly in production: roll up today (and the days late events
        marked), bump the dashboards' cache generation, run the insights after it."""
        if self.celery_app is None:
            from celery import Celery

            self.celery_app = Celery("soak", broker=self.redis_url)
        self.celery_app.send_task(ROLLUP_TASK)

    def dead(self):
        procs = {"gunicorn": self.server.proc, "celery": self.celery, "redis": self.redis}
        procs.update({f"consumer {i}": p for i, p in enumerate(self.consumers, 1)})
        return sorted(name for name, proc in procs.items() if proc.poll() is not None)

    def close(self):
        # A second Ctrl-C must not cut the clean-up short and leave servers running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in self.clients:
            if proc.is_alive():
                proc.terminate()
            proc.join(10)
        if self.server:
            self.server.__exit__()
        for proc in self.consumers:
            stop(proc, timeout=60)  # SIGTERM: they finish and acknowledge the current batch
        stop(self.celery, timeout=60)
        if self.celery_app is not None:
            self.celery_app.close()
        stop(self.redis)
        shutil.rmtree(self.var / "redis", ignore_errors=True)
        if self.db_created and not self.args.keep_db:
            pg_drop(self.args.pg_url)
        log("every process this run started has stopped")


def _redis_ready(url, proc):
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited at start; see its log")
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not answer within 10 s")


def stored_per_org(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT organization_id, count(*) FROM telemetry_usageevent GROUP BY 1").fetchall()
    return dict(rows)


def rollup_times(var):
    text = (var / "celery-worker.log").read_text(errors="replace")
    return [float(s) for name, s in TASK_DONE.findall(text) if name == ROLLUP_TASK]


def task_failures(var):
    return len(TASK_FAILED.findall((var / "celery-worker.log").read_text(errors="replace")))


def log_errors(var):
    """Error lines in the logs of the processes this run started (Redis's aside)."""
    counts = {}
    for path in sorted(var.glob("*.log")):
        if path.name == "redis.log":
            continue
        lines = path.read_text(errors="replace").splitlines()
        counts[path.name] = sum(1 for line in lines if ERROR_LINE.search(line))
    return counts
