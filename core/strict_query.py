"""Strict query strings for the API's figures: an operation takes the query parameters its
OpenAPI schema lists, and answers 400 naming every other one, so a mistyped filter
(`gendr=M`, `user_plan=pro`) or one the endpoint cannot apply (`breakdown=` on retention) is
never read as "unfiltered" (docs/decisions.md, 2026-12-02).

The list is declared once, with `strict_schema` in place of `@extend_schema`: the schema
documents it and `StrictQueryMixin` refuses what is not in it, so the two cannot disagree.
A declared name with a `<placeholder>` (`user.<property>`) takes any name with its prefix.
Pages never use this: their URLs may carry parameters of their own; nor does ingestion: the
SDKs add their own (`?ver=`, `?_=`, `?compression=`).

`?format=` is always taken: core.negotiation refuses a format the view cannot render."""

from collections.abc import Callable, Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema

from .exceptions import DomainError
from .query_params import FILTER_PREFIXES, FILTERS, Query

# Taken by every strict operation whatever it declares: DRF's `?format=` (checked against the
# view's renderers by core.negotiation, and documented by core.openapi) and platform staff's
# `?org_id=` (tenants.permissions: the organisation staff act on; ignored for anyone else).
ALWAYS = ("format", "org_id")
EVENT_PREFIX = "event."


def strict_schema(*, parameters: Sequence[Any] = (), **kwargs: Any) -> Callable[[Any], Any]:
    """`@extend_schema(parameters=…, **kwargs)` of a handler that takes exactly those query
    parameters (plus ALWAYS): the names are kept on the handler for `StrictQueryMixin`."""
    names = tuple(
        p.name for p in parameters if isinstance(p, OpenApiParameter) and p.location == OpenApiParameter.QUERY
    )

    def decorator(handler: Any) -> Any:
        handler.query_names = names
        return extend_schema(parameters=list(parameters), **kwargs)(handler)

    return decorator


def _why(name: str, declared: Sequence[str]) -> str:
    if name.startswith(EVENT_PREFIX):
        return "Event properties are a breakdown (breakdown=event.<property>), never a filter."
    if name in FILTERS or name.startswith(FILTER_PREFIXES):
        return "This filter is not supported here."
    if not declared:
        return "Unknown parameter: this endpoint takes no query parameters."
    return f"Unknown parameter: this endpoint takes {', '.join(declared)}."


def unknown_parameters(query: Query, declared: Sequence[str]) -> dict[str, list[str]]:
    """{name: [why]} for each parameter of `query` that `declared` (and ALWAYS) does not name."""
    if not query:
        return {}
    known = set(declared) | set(ALWAYS)
    prefixes = tuple(name.split("<", 1)[0] for name in declared if "<" in name)
    return {
        name: [_why(name, declared)]
        for name in query.keys()
        if name not in known and not (prefixes and name.startswith(prefixes))
    }


def query_check(query: Query, declared: Sequence[str]) -> None:
    """Refuse (400) the parameters of `query` that `declared` does not name, all of them at once."""
    errors = unknown_parameters(query, declared)
    if not errors:
        return
    if len(errors) == 1:
        name, (message,) = next(iter(errors.items()))
        raise DomainError(f"{name}: {message}", errors=errors)
    raise DomainError(f"Query parameters this endpoint does not take: {', '.join(errors)}.", errors=errors)


class StrictQueryMixin:
    """For API views whose handlers are declared with `strict_schema` (or `core.api`'s
    `list_schema`): once the request is authenticated and allowed, a query parameter the
    handler does not declare is a 400 naming it, before any work is done. A handler declared
    otherwise takes none (but ALWAYS). tenants' `OrgAPIView` has it, so every organisation
    endpoint is strict; ingestion sets `strict_query = False` (SDKs add parameters of their own)."""

    # Read by core.openapi (the `format` parameter) and the tests.
    strict_query = True

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if not self.strict_query:
            return
        method = request.method.lower()
        handler = getattr(self, method, None) if method in self.http_method_names else None  # type: ignore[attr-defined]
        if handler is None or method == "options":
            return  # DRF answers 405 for a method the view has not, OPTIONS describes the view
        query_check(request.query_params, getattr(handler, "query_names", ()))
