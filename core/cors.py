"""Cross-origin requests (CORS) without credentials: what an origin is, whether a request
comes from another one, and the headers that let a browser page read an answer.

The rules of who may send from where belong to the ingestion keys (tenants) and to the
routes that use them (telemetry.cors); this module knows only HTTP. Browsers send `Origin`
on every cross-origin request and on same-origin POSTs; a page's own origin is not a
cross-origin request, so Swagger UI on the platform keeps working without a listed origin.
"""

from urllib.parse import SplitResult, urlsplit

from django.http import HttpRequest, HttpResponse

# Browsers cap this (Chromium at 2 h, Firefox at 24 h): how long a preflight answer is reused.
PREFLIGHT_MAX_AGE_SECONDS = 7200
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ORIGIN_LENGTH = 200


class OriginInvalid(ValueError):
    """The text is not an origin (`scheme://host[:port]`); the message says why."""


def origin_normalise(value: object) -> str:
    """`value` as browsers send it in `Origin`: http(s) scheme and host in lower case, an
    international host in its ASCII (punycode) form, no default port, no trailing slash.
    Raises OriginInvalid for anything else: paths, queries, user info, wildcards, `null`."""
    parts = _origin_parts(_origin_text(value), value)
    scheme, port = parts.scheme.lower(), parts.port
    host = _ascii_host(parts.hostname or "", value)
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origin_text(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise OriginInvalid("An origin is scheme://host[:port], e.g. https://app.example.com.")
    if len(text) > MAX_ORIGIN_LENGTH:
        raise OriginInvalid(f"An origin has at most {MAX_ORIGIN_LENGTH} characters.")
    if "*" in text:
        raise OriginInvalid("Wildcards are not allowed: list each origin (scheme://host[:port]).")
    return text[:-1] if text.endswith("/") else text


def _origin_parts(text: str, value: object) -> SplitResult:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise OriginInvalid(f"{value!r} is not scheme://host[:port] (the port must be a number up to 65535).")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not text.lower().startswith(f"{scheme}://"):
        raise OriginInvalid(f"{value!r}: an origin starts with http:// or https://.")
    if parts.path or parts.query or parts.fragment or "?" in text or "#" in text:
        raise OriginInvalid(f"{value!r}: an origin has no path, query or fragment, only scheme://host[:port].")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise OriginInvalid(f"{value!r}: an origin has no user name or password.")
    if port == 0:
        raise OriginInvalid(f"{value!r}: the port must be between 1 and 65535.")
    return parts


def _ascii_host(host: str, value: object) -> str:
    if not host or any(c.isspace() for c in host):
        raise OriginInvalid(f"{value!r}: the host is missing.")
    if ":" in host:  # IPv6, bracketed in the origin
        return f"[{host}]"
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise OriginInvalid(f"{value!r}: the host is not a valid domain name.")


def request_origin(request: HttpRequest) -> str | None:
    """The `Origin` of a cross-origin request, exactly as sent; None when the request has
    none or comes from the platform's own host (a page served by the platform)."""
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return None
    if urlsplit(origin).netloc.lower() == request.get_host().lower():
        return None
    return origin


def is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


def cors_allow(response: HttpResponse, origin: str, *, expose: tuple[str, ...] = ()) -> HttpResponse:
    """Let a page on `origin` read `response`. Never with credentials: no cookie or HTTP
    authentication of the browser is used on these routes."""
    response.headers["Access-Control-Allow-Origin"] = origin
    if expose:
        response.headers["Access-Control-Expose-Headers"] = ", ".join(expose)
    _vary(response, "Origin")
    return response


def preflight_allow(
    response: HttpResponse, origin: str, *, methods: tuple[str, ...], headers: tuple[str, ...]
) -> HttpResponse:
    """A preflight answer letting `origin` send `methods` with `headers`."""
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    response.headers["Access-Control-Allow-Headers"] = ", ".join(headers)
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
    _vary(response, "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
    return response


def vary_origin(response: HttpResponse) -> HttpResponse:
    """Mark an answer that depends on the request's Origin (a refused preflight, too)."""
    _vary(response, "Origin")
    return response


def _vary(response: HttpResponse, *names: str) -> None:
    # The answer depends on the Origin: a shared cache must not hand one origin's to another.
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    known = {v.lower() for v in present}
    response.headers["Vary"] = ", ".join(present + [n for n in names if n.lower() not in known])
