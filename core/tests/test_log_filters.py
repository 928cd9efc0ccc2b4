"""Refused requests log one line, not a traceback; server errors keep theirs."""

import logging
import sys

import pytest
from django.test import Client

from core.log_filters import ClientErrorsWithoutTraceback

pytestmark = pytest.mark.django_db


def test_a_refused_page_logs_its_line_without_the_traceback(analyst_user, caplog):
    client = Client()
    client.force_login(analyst_user)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/settings/").status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage().startswith("Forbidden") and record.exc_info is None


def test_a_server_error_keeps_its_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), exc_info)
    record.status_code = 500
    assert ClientErrorsWithoutTraceback().filter(record) and record.exc_info == exc_info
    record.status_code = 404
    assert ClientErrorsWithoutTraceback().filter(record) and record.exc_info is None
