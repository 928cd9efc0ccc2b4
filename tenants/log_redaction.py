"""Invitation links out of the server logs.

An invitation link (`/invite/<token>/`) lets whoever holds it join the organisation with the
invited role, admin included. Besides the e-mail itself (core.mail keeps it out of
the log), the link reaches the logs as a request path: the access log line of the invitee's
click, and the Referer of every asset that page loads. This filter blanks the token in the
access logs of gunicorn and of the development server, whatever their format."""

import logging
import re
from collections.abc import Mapping

_TOKEN = re.compile(r"(/invite/)[^/\s?#\"']+")
LOGGERS = ("gunicorn.access", "django.server", "django.request")


def invitation_links_redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text) if "/invite/" in text else text


class InvitationLinkFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):  # gunicorn logs its format with a dict of atoms
            for key, value in list(args.items()):
                if isinstance(value, str) and "/invite/" in value:
                    args[key] = invitation_links_redact(value)
        elif isinstance(args, tuple):
            record.args = tuple(invitation_links_redact(a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str):
            record.msg = invitation_links_redact(record.msg)
        return True


def invitation_link_filter_install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, InvitationLinkFilter) for f in logger.filters):
            logger.addFilter(InvitationLinkFilter())
