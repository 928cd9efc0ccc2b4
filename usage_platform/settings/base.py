"""The project itself: paths, the environment, DEBUG and SECRET_KEY, hosts, apps, middleware,
templates, static files and i18n."""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
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


def published_key(key: str) -> bool:
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
    if published_key(key):
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"

# --- Static files, i18n -------------------------------------------------------------------
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
# The interface is written in English only: no message is translated, and Django's translation
# machinery (a per-thread active language, a chain of catalogs walked for every string) cost a
# rendered page 10-30 % of its time (docs/decisions.md, 2026-12-03). Formats still follow
# LANGUAGE_CODE.
USE_I18N = False
USE_TZ = True

# Anomaly's (organisation, feature, date, detector, metric) key treats a null feature as a
# value: PostgreSQL enforces it (NULLS NOT DISTINCT); on SQLite the insights service's
# upsert keeps it, since SQLite cannot express the constraint.
# The event index's INCLUDE (end_user) columns make PostgreSQL's feature-step funnel reads
# index-only; SQLite ignores them and its index works the same without (every `make demo`
# printed the warning).
SILENCED_SYSTEM_CHECKS = ["models.W047", "models.W040"]
