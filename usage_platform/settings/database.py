"""The databases: the default (SQLite embedded, PostgreSQL in production), the read replica,
and per-engine connection options."""

import sys

from django.core.exceptions import ImproperlyConfigured

from .base import BASE_DIR, env

# --- Database -------------------------------------------------------------------------
# Web processes (wsgi.py/asgi.py mark themselves in usage_platform.process before the
# settings load) stop any query after this many milliseconds on PostgreSQL and answer 503
# with Retry-After; keep it below gunicorn's worker timeout (GUNICORN_TIMEOUT, 30 s) so the
# query ends before the worker is killed. Commands, stream consumers, Celery workers and
# migrations keep no limit. 0 turns it off.
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=15_000)
# Looked up, not imported: the settings also run alone (scripts/healthcheck.py).
WEB_PROCESS = getattr(sys.modules.get("usage_platform.process"), "kind", "") == "web"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# A streaming read replica of the PostgreSQL primary (docs/scaling.md, "Read replica"). The
# analytics and insights reads of pages, the API, CSV exports and the detector, narrative and
# export tasks go to it (core.db_routing); writes, migrations, and the reads that follow a
# write of the same user or organisation until the replica has replayed it go to the primary.
# Unset: the "replica" alias is the primary's own settings and nothing is routed to it.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL) if DATABASE_REPLICA_URL else dict(DATABASES["default"])
# Test runs create no database on the replica (a standby is read-only): its alias uses the
# test database, and conftest.py keeps routing off except in the tests that turn it on.
DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_READ_REPLICA = bool(DATABASE_REPLICA_URL)
DATABASE_ROUTERS = ["core.db_routing.ReplicaRouter"]
# How long a write keeps its organisation's (rollups) or user's reads on the primary at most:
# they move back to the replica as soon as it has replayed the write, so this only bounds how
# long a replica lagging further is waited for.
DATABASE_REPLICA_PIN_SECONDS = env.int("DATABASE_REPLICA_PIN_SECONDS", default=30)
# After the replica fails to connect or answer, reads go to the primary for this long before it
# is tried again (logged once when the outage starts, once when it ends).
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=15.0)
# A page must not wait long for a replica that is gone: the primary answers instead.
DATABASE_REPLICA_CONNECT_TIMEOUT = env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2)
# On PostgreSQL a day's rollup runs its event-dimension step on a second connection beside
# the rest (analytics.side_lane): two backends, so two cores, for one day. Off: one
# connection, one step after the other.
ROLLUP_SIDE_CONNECTION = env.bool("ROLLUP_SIDE_CONNECTION", default=True)
if DATABASE_REPLICA_URL and {DATABASES[a]["ENGINE"] for a in ("default", "replica")} != {
    "django.db.backends.postgresql"
}:
    raise ImproperlyConfigured("DATABASE_REPLICA_URL needs PostgreSQL for both DATABASE_URL and the replica.")

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE
    # transactions take the write lock up front instead of failing half-way with
    # "database is locked"; the timeout waits for that lock.
    for _database in DATABASES.values():
        _database["OPTIONS"] = {
            **_database.get("OPTIONS", {}),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
else:
    for _alias, _database in DATABASES.items():
        _database.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
        _database.setdefault("CONN_HEALTH_CHECKS", True)
        _database["OPTIONS"] = dict(_database.get("OPTIONS", {}))
        _replica = _alias == "replica" and bool(DATABASE_REPLICA_URL)
        _timeout = DATABASE_REPLICA_CONNECT_TIMEOUT if _replica else 5
        _database["OPTIONS"].setdefault("connect_timeout", _timeout)
        # A kept connection to a server that vanished without a TCP reset (frozen machine,
        # network cut) would otherwise wait for the kernel's retransmissions, ~15 minutes:
        # past gunicorn's worker timeout. tcp_user_timeout drops it when a query sent is not
        # acknowledged in time (Django's health check at the next use, or any query);
        # keepalives when the server stops acknowledging while a query runs. A live server's
        # kernel acknowledges both however long a query takes; a server process stopped
        # (SIGSTOP) while its kernel runs is bounded only by gunicorn's timeout. The replica's
        # bounds are short (the primary can take the read); the primary's stay well inside
        # gunicorn's 30 s, so a worker answers 503 rather than being killed.
        for _option, _value in (
            ("keepalives", 1),
            ("keepalives_idle", 3 if _replica else 10),
            ("keepalives_interval", 1 if _replica else 3),
            ("keepalives_count", 3),
            ("tcp_user_timeout", 4_000 if _replica else 15_000),
        ):
            _database["OPTIONS"].setdefault(_option, _value)
        # No JIT: it compiles every dashboard statement whose cost estimate looks large, which
        # took 1.3 s of a 2.3 s retention query on the 10M-event benchmark (see docs/benchmarks.md).
        _database["OPTIONS"].setdefault("options", "-c jit=off")
        if WEB_PROCESS and DB_STATEMENT_TIMEOUT_MS > 0:
            # Set once per connection at connect time, so no request pays a round trip for it.
            _database["OPTIONS"]["options"] += f" -c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
