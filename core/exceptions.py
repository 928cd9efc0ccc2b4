"""One error shape for the whole API: `{"detail": str, "errors": {field: [messages]}}`.

Services raise `DomainError` (or a subclass) with a status and field errors; DRF's own
exceptions (validation, auth, throttling, parse errors) are reshaped here too, so no
endpoint ever answers with a different shape or a stack trace.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A failure a caller can act on. Rendered as `{"detail", "errors"}` with `status_code`."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid request."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors or {}
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}
        super().__init__(self.detail)


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Not found."


class Unauthorized(DomainError):
    """Missing, invalid, expired or revoked credentials (a token in the body, not the header)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Authentication credentials were not provided or are invalid."


class PayloadTooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class Forbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "You do not have permission to perform this action."


class StorageUnavailable(DomainError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Storage is temporarily unavailable; retry later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **kwargs)


# PostgreSQL's query_canceled: statement_timeout cut the query off (or an operator did).
QUERY_CANCELED = "57014"
QUERY_TIMEOUT_DETAIL = "The query took too long and was stopped; retry later or ask for a shorter range."
QUERY_TIMEOUT_RETRY_AFTER = 30
DATA_ERROR_DETAIL = "A value in the request is outside what the database can store or compare."
# PostgreSQL's read_only_sql_transaction: a write sent to a standby (a failover not yet seen
# by DNS or the pooler) or while `default_transaction_read_only` is on for maintenance.
READ_ONLY_SQL_TRANSACTION = "25006"


def database_read_only(exc: BaseException) -> bool:
    """Whether `exc` is a write refused because the database takes none right now: an outage
    to wait out (503, a consumer's retry), not a bad request or a refused event."""
    return isinstance(exc, DatabaseError) and getattr(exc.__cause__, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION


class QueryTimedOut(StorageUnavailable):
    """A read stopped after `DB_STATEMENT_TIMEOUT_MS` where the database itself has no
    statement timeout (SQLite's progress handler, `analytics.queries.funnel`)."""

    def __init__(self) -> None:
        super().__init__(QUERY_TIMEOUT_DETAIL, retry_after=QUERY_TIMEOUT_RETRY_AFTER)


def query_timed_out(exc: BaseException) -> bool:
    """Whether `exc` is one statement stopped for taking too long (PostgreSQL's
    `statement_timeout`, or `QueryTimedOut`): that statement's failure, the database fine."""
    if isinstance(exc, QueryTimedOut):
        return True
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED


def storage_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database (or the storage behind an ingestion) is out of reach
    or takes no writes: everything after it would fail too. A batch that carries on past the
    part that raised (one alert rule, one channel of a digest) stops at these instead, and
    its task is run again. A statement stopped by a timeout is not one (`query_timed_out`):
    the next statement, smaller, may well answer."""
    if query_timed_out(exc):
        return False
    return isinstance(exc, OperationalError | InterfaceError | StorageUnavailable) or database_read_only(exc)


def database_failure(exc: Exception, request: HttpRequest | None = None) -> tuple[int, str, dict[str, str]] | None:
    """(status, detail, headers) for a database error that is not a bug of the platform:
    a query stopped by `statement_timeout` or a database out of reach (503 with
    Retry-After), a value the database refuses (SQLSTATE class 22, e.g. a NUL in text or a
    number past bigint: 400). None for anything else. Logs what it recognises."""
    where = f"{request.method} {request.path}" if request is not None else "-"
    if isinstance(exc, OperationalError | InterfaceError) or database_read_only(exc):
        if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
            logger.warning("query stopped by statement_timeout: %s", where)
            return 503, QUERY_TIMEOUT_DETAIL, {"Retry-After": str(QUERY_TIMEOUT_RETRY_AFTER)}
        logger.warning("database unavailable: %s: %s", where, exc)
        return 503, StorageUnavailable.default_detail, {"Retry-After": "5"}
    if isinstance(exc, DataError):
        logger.warning("database refused a value: %s: %s", where, exc)
        return 400, DATA_ERROR_DETAIL, {}
    return None


_NON_FIELD_KEYS = {"detail", "code", "messages"}


def _flatten(detail: object) -> dict[str, list[str]]:
    """DRF ValidationError detail (nested dict/list) → {field: [str, …]}."""
    if isinstance(detail, dict):
        errors: dict[str, list[str]] = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _flatten(value).items():
                    errors[f"{field}.{sub}"] = messages
            elif isinstance(value, list):
                flat = []
                for item in value:
                    if isinstance(item, dict):
                        for sub, messages in _flatten(item).items():
                            errors.setdefault(f"{field}.{sub}", []).extend(messages)
                    else:
                        flat.append(str(item))
                if flat:
                    errors[field] = flat
            else:
                errors[field] = [str(value)]
        return errors
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    return {}


def _summary(errors: dict[str, list[str]]) -> str:
    for field, messages in errors.items():
        if messages:
            if field == "non_field_errors":
                return messages[0]
            return f"{field}: {messages[0]}"
    return "Invalid request."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        reply = Response({"detail": exc.detail, "errors": exc.errors}, status=exc.status_code)
        for header, value in exc.headers.items():
            reply[header] = value
        return reply
    if isinstance(exc, DatabaseError):
        failure = database_failure(exc, context.get("request"))
        if failure is not None:
            code, message, headers = failure
            return Response({"detail": message, "errors": {}}, status=code, headers=headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        if isinstance(exc, DatabaseError):
            logger.exception("database error")
            return Response(
                {"detail": "The request could not be completed.", "errors": {}},
                status=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        return None
    response.data = _error_body(exc)
    return response


def _token_reason(detail: dict[str, Any]) -> str | None:
    """Why simplejwt refused a token ("Token is expired", "Token is invalid"), from its
    `messages`: its `detail` says the same "Given token not valid for any token type" for an
    expired token, which a client must refresh, and for a forged one."""
    messages = detail.get("messages")
    reasons = [str(m["message"]) for m in messages or () if isinstance(m, dict) and m.get("message")]
    if not reasons:
        return None
    reason = reasons[0].rstrip(".")
    if "expired" in reason:
        return f"{reason}: get a new access token from auth/refresh, or log in again."
    return f"{reason}."


def _error_body(exc: Exception) -> dict[str, Any]:
    """`{detail, errors}` for an exception DRF's own handler has answered."""
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        return {"detail": _summary(errors), "errors": errors}
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(detail, dict):
        # simplejwt's token errors carry {"detail", "code", "messages"}: bookkeeping for
        # the client library, not field errors, so only real fields stay in `errors`.
        errors = _flatten({k: v for k, v in detail.items() if k not in _NON_FIELD_KEYS})
        return {"detail": _token_reason(detail) or str(detail.get("detail") or _summary(errors)), "errors": errors}
    if isinstance(detail, list):
        return {"detail": " ".join(str(d) for d in detail), "errors": {}}
    return {"detail": str(detail), "errors": {}}


def json_error(detail: str, status_code: int, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    """For plain Django views (404/500 handlers, middleware) that must answer in the API shape."""
    return JsonResponse({"detail": detail, "errors": errors or {}}, status=status_code)
