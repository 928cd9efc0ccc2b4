"""Gunicorn settings for the image, `make run` and the demo:

    gunicorn -c usage_platform/gunicorn.conf.py usage_platform.wsgi

Gunicorn's master reads this file before Django exists, so its knobs come straight from the
environment (documented in .env.example) rather than from the settings. Anything else can be
set with gunicorn's own `GUNICORN_CMD_ARGS`; command-line flags override this file.
"""

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = f"0.0.0.0:{_int('PORT', 8000)}"
# Sync workers, one request at a time each: the views are short and CPU-bound, and a worker
# is ~90 MB after warm-up (docs/benchmarks.md). 2 × cores + 1 as gunicorn advises, capped so
# a container that sees a large host's cores does not start dozens of them.
workers = _int("WEB_CONCURRENCY", min(2 * len(os.sched_getaffinity(0)) + 1, 8))
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
# Behind a load balancer that reuses connections.
keepalive = 5
# Gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl): every
# gunicorn of that user on the machine takes it over and deletes it on exit. Nothing here
# uses it; process managers signal the master instead.
control_socket_disable = True
# Recycling now and then bounds any slow leak (the pages' forecasts and charts are plain
# Python: no request loads numpy or pandas into a web worker). The jitter keeps the workers
# from restarting together. 0 turns recycling off.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = max_requests // 10
# The workers' heartbeat files on tmpfs: on an overlay filesystem a slow disk write can make
# the master think a worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
# Gunicorn's default format with "-" for the Basic user: Segment's and RudderStack's SDKs send
# the ingestion key as that user, and keys are never stored (docs/sdks.md). The query string
# (`?api_key=…`) is blanked in the workers by tenants.log_redaction.
access_log_format = '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# The longest request line gunicorn accepts (its default, 4094, answered its own HTML 414 to
# a funnel of ten long step keys or long `user.` filter values). A header field must hold the
# Referer of a page at such a URL (scheme, host and the same path), hence twice that.
limit_request_line = 8190
limit_request_field_size = 16380
