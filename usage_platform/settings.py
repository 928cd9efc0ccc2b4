"""Settings for Usage Platform: one module, every value from the environment or `.env`.

The embedded default (no environment at all) is SQLite, local caches and a filesystem
Celery broker, so `make demo` needs no other service. Production sets DATABASE_URL
(PostgreSQL) and REDIS_URL. `.env.example` documents every variable read here.
"""

import ipaddress
import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# SECRET_KEY signs sessions, CSRF tokens, password-reset links and (through JWT_SIGNING_KEY)
# every API token: anyone who knows it can forge an org admin's token offline. So there is no
# default outside DEBUG, and keys that were ever published are refused like a missing one.
# SECRET_KEY_FILE (a path, relative to the project) suits Docker secrets and `make demo`,
# which keeps a random key in var/secret_key; with neither set, that file is used when it
# exists (it is this checkout's own random key), so `manage.py` by hand works after `make`;
# SECRET_KEY_FILE set empty turns that off.
_PUBLISHED_KEYS = {
    "dev-insecure-change-me-in-production-0123456789abcdef",  # the built-in default until 2026-11
    "change-me-to-a-long-random-string",  # .env.example's placeholder until 2026-11
}


def _published(key: str) -> bool:
    return key in _PUBLISHED_KEYS or key.startswith("django-insecure-")  # Django's own dev keys


def _secret_key() -> str:
    key = env("SECRET_KEY", default="")
    path = env("SECRET_KEY_FILE", default="")
    if "SECRET_KEY_FILE" not in os.environ:  # unset, not set empty
        path = str(VAR_DIR / "secret_key") if (VAR_DIR / "secret_key").is_file() else ""
    if not key and path:
        try:
            key = (BASE_DIR / path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"SECRET_KEY_FILE={path} cannot be read: {exc.strerror}.")
    if DEBUG:
        return key or "django-insecure-debug-only-key-never-used-with-debug-off"
    if not key:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY (or SECRET_KEY_FILE) in the "
            "environment or in .env, e.g. SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or SECRET_KEY_FILE=var/secret_key (which `make demo` and `make run` create), or DEBUG=true on a "
            "development machine."
        )
    if _published(key):
        raise ImproperlyConfigured("SECRET_KEY is a published example value; set a random one (DEBUG is off).")
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "tenants",
    "telemetry",
    "analytics",
    "insights",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.security_headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A request that wrote keeps its user's reads on the primary until the replica has it.
    "core.db_routing.PrimaryPinMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees a view's exception first: 503/400 instead of a 500 (errors.py).
    "core.errors.ErrorMiddleware",
]

ROOT_URLCONF = "usage_platform.urls"
WSGI_APPLICATION = "usage_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Web processes (wsgi.py/asgi.py mark themselves in usage_platform.process before the
# settings load) stop any query after this many milliseconds on PostgreSQL and answer 503
# with Retry-After; keep it below gunicorn's worker timeout (GUNICORN_TIMEOUT, 30 s) so the
# query ends before the worker is killed. Commands, stream consumers, Celery workers and
# migrations keep no limit. 0 turns it off.
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=15_000)
# Looked up, not imported: settings.py also runs alone (scripts/healthcheck.py).
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
        _timeout = DATABASE_REPLICA_CONNECT_TIMEOUT if _alias == "replica" and DATABASE_REPLICA_URL else 5
        _database["OPTIONS"].setdefault("connect_timeout", _timeout)
        # No JIT: it compiles every dashboard statement whose cost estimate looks large, which
        # took 1.3 s of a 2.3 s retention query on the 10M-event benchmark (see docs/benchmarks.md).
        _database["OPTIONS"].setdefault("options", "-c jit=off")
        if WEB_PROCESS and DB_STATEMENT_TIMEOUT_MS > 0:
            # Set once per connection at connect time, so no request pays a round trip for it.
            _database["OPTIONS"]["options"] += f" -c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"

# --- Redis, cache, Celery --------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    # Django's Redis cache where an unreachable Redis is a miss (core/cache.py). A
    # live Redis accepts a connection in well under a millisecond: waiting longer only delays
    # the request that finds it gone (the ones after it skip Redis for a few seconds).
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="up"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 2},
        }
    }
else:
    # A file cache, not local memory: web, worker and beat are separate processes and
    # must share throttle counters and the dashboard cache generation.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env("CACHE_DIR", default=str(VAR_DIR / "cache")),
        }
    }

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_DIR = Path(env("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        # kombu's default is `control/` in the working directory (the repository root).
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
    # kombu creates none of them but `control`, and that one without its parents: a worker
    # started first on a fresh clone would crash on the missing queue folder.
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
# KiB. A pool process that has grown past this when a task ends is replaced by a fresh fork:
# the detectors load numpy and pandas (a child goes from ~80 to ~185 MB), so the next
# hourly run pays ~2 s of imports again and the worker gives the memory back in between.
# 0: never replace (prefork pool only).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=150_000) or None
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TIMEZONE = "UTC"
# django-celery-beat's database scheduler, touching a heartbeat file on every tick.
CELERY_BEAT_SCHEDULER = "usage_platform.heartbeat:HeartbeatScheduler"
# The Celery worker and beat touch `worker` and `beat` here; the container health checks
# (scripts/healthcheck.py) read their age.
HEARTBEAT_DIR = Path(env("HEARTBEAT_DIR", default=str(VAR_DIR / "heartbeat")))

# --- Ingestion -------------------------------------------------------------------------
INGEST_MODE = env("INGEST_MODE", default="direct")  # direct | queue
INGEST_STREAM = env("INGEST_STREAM", default="usage:events")
INGEST_CONSUMER_GROUP = env("INGEST_CONSUMER_GROUP", default="ingest")
INGEST_MAX_BATCH = 1000
INGEST_MAX_BODY_BYTES = 5 * 1024 * 1024
INGEST_MAX_METADATA_BYTES = 16 * 1024
INGEST_MAX_FUTURE = timedelta(hours=24)
INGEST_THROTTLE_RATE = env("INGEST_THROTTLE_RATE", default="100000/min")
# A consumer reclaims entries another consumer read but did not acknowledge for this long.
INGEST_CLAIM_MIN_IDLE_MS = env.int("INGEST_CLAIM_MIN_IDLE_MS", default=60_000)
# Queue mode answers 202 only into a Redis that persists (AOF); without it events are
# written directly. True accepts a Redis whose restart loses what is queued (development,
# or a managed Redis whose durability comes from elsewhere). See telemetry/services/durability.py.
INGEST_ALLOW_VOLATILE_REDIS = env.bool("INGEST_ALLOW_VOLATILE_REDIS", default=False)
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
# Queue mode: how long a process reuses a feature reference it has resolved (0: never).
INGEST_FEATURE_CACHE_SECONDS = env.float("INGEST_FEATURE_CACHE_SECONDS", default=30.0)
# How long a process remembers an end user's id and seen span (0: never); see telemetry/services/storage/end_users.py.
INGEST_END_USER_CACHE_SECONDS = env.float("INGEST_END_USER_CACHE_SECONDS", default=60.0)
# How long a process trusts a key it has looked up: revoking it takes effect at once in the
# process that revoked it and within this many seconds everywhere else. 0 turns caching off.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)

# --- Raw events: partitions, retention, dedupe (docs/scaling.md, "Partitions") ---
# Months of raw events kept (the current month counts as one); older events are refused at
# ingestion and, on PostgreSQL, their monthly partitions are dropped whole by the nightly
# `telemetry.raw_events_expire` job (SQLite deletes the rows). Rollups are kept. 0 keeps
# raw events forever.
RAW_EVENT_RETENTION_MONTHS = env.int("RAW_EVENT_RETENTION_MONTHS", default=0)
# PostgreSQL: months after the current one whose partitions the daily job keeps ready.
EVENT_PARTITIONS_AHEAD = env.int("EVENT_PARTITIONS_AHEAD", default=3)
# PostgreSQL: days an event's uuid is remembered in the dedupe table, so a retry that comes
# back this long after (the SDKs retry for up to 7 days) is still skipped whatever its
# timestamp; a retry with the same timestamp is skipped for as long as the event is kept.
EVENT_DEDUPE_DAYS = env.int("EVENT_DEDUPE_DAYS", default=8)

# Ingestion bodies may be 5 MB; everything else keeps Django's 2.5 MB guard.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024

# --- Auth ------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
INVITATION_TTL = timedelta(days=env.int("INVITATION_TTL_DAYS", default=7))

# The reverse proxies / load balancers in front of the web processes (IPs or CIDRs). Only a
# request whose direct peer is one of them has its client address read from X-Forwarded-For
# (the right-most address that is not a trusted proxy); otherwise the header is ignored,
# since anyone can send it. Empty: the peer is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    ipaddress.ip_network(_proxy.strip(), strict=False)  # a typo stops the start, not the limits
# Failed log-ins allowed (on the API, the pages and the admin alike) per account and per
# client address within a sliding window; 0 turns a limit off. See docs/decisions.md.
LOGIN_ACCOUNT_FAILURES = env.int("LOGIN_ACCOUNT_FAILURES", default=10)
LOGIN_ACCOUNT_WINDOW_SECONDS = env.int("LOGIN_ACCOUNT_WINDOW_SECONDS", default=15 * 60)
LOGIN_ADDRESS_FAILURES = env.int("LOGIN_ADDRESS_FAILURES", default=30)
LOGIN_ADDRESS_WINDOW_SECONDS = env.int("LOGIN_ADDRESS_WINDOW_SECONDS", default=5 * 60)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON: orjson, depth-limited, refusing lone surrogates
    # (core/parsers.py). The public auth endpoints also take forms (OAuth2 password
    # clients), see tenants.views_api.PublicAuthView.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "ingest": INGEST_THROTTLE_RATE,
        "auth": env("AUTH_THROTTLE_RATE", default="30/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

JWT_SIGNING_KEY = env("JWT_SIGNING_KEY", default="") or SECRET_KEY
if not DEBUG and _published(JWT_SIGNING_KEY):
    raise ImproperlyConfigured("JWT_SIGNING_KEY is a published example value; set a random one or leave it unset.")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Usage Platform API",
    "DESCRIPTION": (
        "Feature-usage monitoring for SaaS organisations. Users authenticate with a JWT "
        "(`/api/v1/auth/login`); products send events with an ingestion API key "
        "(`Authorization: Bearer upk_…` or `X-API-Key`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: the docs page must work offline and load
    # nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The health answers' and the anomalies' `status` would otherwise collide with the other
    # `status` enums and get a hashed name (drf_spectacular.W001, which `check --deploy` reports).
    "ENUM_NAME_OVERRIDES": {
        "HealthStatusEnum": ["ok", "degraded"],
        "AnomalyStatusEnum": "insights.models.Anomaly.Status",
        "ItemResultStatusEnum": ["accepted", "duplicate", "rejected"],
        "AlertRuleKindEnum": "insights.models.AlertRule.Kind",
    },
    # PATCH bodies are validated whole (a member's role, an anomaly's status are required);
    # the few partial ones declare every field optional themselves.
    "COMPONENT_SPLIT_PATCH": False,
}

# --- Analytics ---------------------------------------------------------------------------
# Upper bound on a cached dashboard figure, in seconds (0: no caching); every rollup drops
# them all anyway, so this only bounds what a missed invalidation could leave behind.
ANALYTICS_CACHE_TTL = env.int("ANALYTICS_CACHE_TTL", default=300)

# --- Insights and alerts -----------------------------------------------------------------
GEMINI_API_KEY = env("GEMINI_API_KEY", default="")
GEMINI_MODEL = env("GEMINI_MODEL", default="gemini-2.5-flash")
GEMINI_TIMEOUT_SECONDS = env.float("GEMINI_TIMEOUT_SECONDS", default=10.0)
# Empty: Google's endpoint. Set it to route through a proxy (the tests point it at a stub).
GEMINI_BASE_URL = env("GEMINI_BASE_URL", default="")
INSIGHTS_CACHE_TTL = env.int("INSIGHTS_CACHE_TTL", default=120)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=5)
# First retry delay; each further attempt doubles it (capped at one hour).
WEBHOOK_BACKOFF_SECONDS = env.int("WEBHOOK_BACKOFF_SECONDS", default=30)

# E-mail. Invitation e-mails carry a link that joins the organisation (as admin, too), so the
# embedded default writes messages to files only the server's user can read (var/mail), never
# to the log. Production sends through SMTP: EMAIL_URL=smtp+tls://user:password@host:587.
EMAIL_URL = env("EMAIL_URL", default="")
EMAIL_BACKEND = "core.mail.PrivateFileEmailBackend"
EMAIL_FILE_PATH = str(BASE_DIR / env("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail")))
if EMAIL_URL:
    _smtp = environ.Env.email_url_config(EMAIL_URL)
    EMAIL_BACKEND = _smtp["EMAIL_BACKEND"]
    EMAIL_HOST, EMAIL_PORT = _smtp["EMAIL_HOST"], _smtp["EMAIL_PORT"]
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _smtp["EMAIL_HOST_USER"], _smtp["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS, EMAIL_USE_SSL = _smtp.get("EMAIL_USE_TLS", False), _smtp.get("EMAIL_USE_SSL", False)
EMAIL_BACKEND = env("EMAIL_BACKEND", default="") or EMAIL_BACKEND
# Invitations are e-mailed inside the request: a mail server that hangs must not hang it.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="alerts@usage-platform.local")

# --- Demo data -----------------------------------------------------------------------------
# A local MovieLens 100k copy (file or folder) for `seed_movielens` when the hub is
# unreachable; empty: var/movielens/ if it holds one. Never committed (GroupLens licence).
MOVIELENS_PATH = env("MOVIELENS_PATH", default="")

# --- Static, i18n, logging -------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS and browser security ----------------------------------------------------------
# The defaults serve the embedded demo on plain http://127.0.0.1. Production behind HTTPS sets
# .env.example's "Production behind HTTPS" block; `check --deploy` is clean with it (tested).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Health probes come over plain HTTP from inside the network (load balancer, compose).
SECURE_REDIRECT_EXEMPT = [r"^health(/detailed)?$", r"^api/v1/health(/detailed)?$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Only behind a proxy that terminates TLS and sets X-Forwarded-Proto itself: anywhere else a
# client could claim https with the header.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL_HEADER", default=False) else None
)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy on every response (core.security_headers): the pages load
# only same-origin scripts, styles, images and fonts, and nothing inline. Written in Django 6's
# SECURE_CSP format, so the upgrade can hand it to Django's own middleware.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Powerful browser features the pages never use are denied to them and to anything embedded.
# The clipboard keeps the browsers' default (this origin only, reading behind a prompt): the
# copy buttons write the API key, webhook secret and invitation link to it.
PERMISSIONS_POLICY = {
    "accelerometer": [],
    "autoplay": [],
    "camera": [],
    "display-capture": [],
    "encrypted-media": [],
    "fullscreen": [],
    "geolocation": [],
    "gyroscope": [],
    "hid": [],
    "idle-detection": [],
    "magnetometer": [],
    "microphone": [],
    "midi": [],
    "payment": [],
    "picture-in-picture": [],
    "publickey-credentials-get": [],
    "screen-wake-lock": [],
    "serial": [],
    "usb": [],
    "xr-spatial-tracking": [],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Anomaly's (organisation, feature, date, detector, metric) key treats a null feature as a
# value: PostgreSQL enforces it (NULLS NOT DISTINCT); on SQLite the insights service's
# upsert keeps it, since SQLite cannot express the constraint.
SILENCED_SYSTEM_CHECKS = ["models.W047"]
