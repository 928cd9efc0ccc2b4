"""What the product's features read: the analytics cache, the narrative's model, webhooks,
e-mail and the demo data."""

import environ

from .base import BASE_DIR, VAR_DIR, env

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
# Where people open the platform: the base of the links in e-mails sent outside a request
# (alert e-mails from the worker). Invitations sent from a page or the API use the request's
# own host instead.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Demo data -----------------------------------------------------------------------------
# A local MovieLens 100k copy (file or folder) for `seed_movielens` when the hub is
# unreachable; empty: var/movielens/ if it holds one. Never committed (GroupLens licence).
MOVIELENS_PATH = env("MOVIELENS_PATH", default="")
