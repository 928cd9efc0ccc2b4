"""Secrets out of the server logs: invitation links and ingestion keys.

An invitation link (`/invite/<token>/`) lets whoever holds it join the organisation with the
invited role, admin included. Besides the e-mail itself (core.mail keeps it out of
the log), the link reaches the logs as a request path: the access log line of the invitee's
click, and the Referer of every asset that page loads.

An ingestion key (`upk_…`) is stored only as a hash (docs/sdks.md): the access log must not keep
it either. Segment and RudderStack send it as the HTTP Basic user, which gunicorn's default
format logs (`%(u)s`); a client may put it in the query string (`?api_key=…`). The platform
signs no one in with Basic auth, so the Basic user is blanked whatever it is.

This filter blanks them in the access logs of gunicorn and of the development server,
whatever their format."""

import logging
import re
from collections.abc import Mapping

REDACTED = "[redacted]"
_TOKEN = re.compile(r"(/invite/)[^/\s?#\"']+")
# Query parameters that carry a credential, whatever their value looks like.
_SECRET_PARAM = re.compile(
    r"((?:^|[?&;])(?:api[_-]?key|apikey|key|write[_-]?key|writekey|token|access[_-]?token|password)=)[^&;\s\"'#]*",
    re.IGNORECASE,
)
# An ingestion key wherever else it appears (another parameter, a path, a Referer).
_API_KEY = re.compile(r"upk_[A-Za-z0-9_\-]+")
# gunicorn's atoms of the Basic user and of the Authorization header and its environ twin.
_CREDENTIAL_ATOMS = frozenset({"u", "{authorization}i", "{http_authorization}e", "{x-api-key}i", "{http_x_api_key}e"})
LOGGERS = ("gunicorn.access", "django.server", "django.request")


def invitation_links_redact(text: str) -> str:
    return _TOKEN.sub(rf"\1{REDACTED}", text) if "/invite/" in text else text


def log_secrets_redact(text: str) -> str:
    """`text` without invitation tokens, credential query values and ingestion keys."""
    text = invitation_links_redact(text)
    if "=" in text:
        text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    return _API_KEY.sub(REDACTED, text) if "upk_" in text else text


class LogSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):  # gunicorn logs its format with a dict of atoms
            for key, value in list(args.items()):
                if not isinstance(value, str):
                    continue
                if key.lower() in _CREDENTIAL_ATOMS and value not in ("", "-"):
                    args[key] = REDACTED  # type: ignore[index]
                else:
                    args[key] = log_secrets_redact(value)  # type: ignore[index]
        elif isinstance(args, tuple):
            record.args = tuple(log_secrets_redact(a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str):
            record.msg = log_secrets_redact(record.msg)
        return True


def log_secrets_filter_install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LogSecretsFilter) for f in logger.filters):
            logger.addFilter(LogSecretsFilter())
