"""Logging filters the settings attach by dotted path."""

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Keeps Django's one line per 4xx answer (`django.request`: "Forbidden (Permission
    denied): /settings/") but drops the traceback it attaches: a 403 or 404 is the client's
    business, and a traceback per refused request buried the server errors in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
