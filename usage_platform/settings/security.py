"""Who may do what: log-in and passwords, trusted proxies and log-in limits, the API's
authentication (JWT) and schema, HTTPS, cookies and the browser security headers."""

import ipaddress
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from .base import DEBUG, SECRET_KEY, env, published_key
from .ingestion import INGEST_THROTTLE_RATE

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
    # `?format=` naming no renderer of the view: a 400 naming the formats it has, not a 404.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.FormatNegotiation",
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
if not DEBUG and published_key(JWT_SIGNING_KEY):
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
PERMISSIONS_POLICY: dict[str, list[str]] = {
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
