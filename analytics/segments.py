"""Saved segments: named filter sets per organisation, CRUD and their use as `?segment=<id>`.

A segment's `filters` are stored as the query-string values they stand for, so expanding
`?segment=` goes through the same validation as typed filters (`analytics.filters`)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.exceptions import DomainError, NotFound
from core.query_params import parse_id
from tenants.models import Organization

from .filters import USER_PREFIX, filters_validate
from .models import Segment

SEGMENT_FILTERS = ("feature", "age", "gender", "account")
MAX_SEGMENTS = 200


def _refuse(field: str, message: str) -> DomainError:
    return DomainError(f"{field}: {message}", errors={field: [message]})


def segment_filters_clean(org: Organization, raw: Any) -> dict[str, str]:
    """`raw` ({age?, gender?, feature?, account?, "user.<property>"?: value}) validated and
    normalised (gender as its code, the feature by key); a 400 naming the bad filter."""
    if not isinstance(raw, dict):
        raise _refuse("filters", "Give an object of filters.")
    if not raw:
        raise _refuse("filters", "Give at least one filter.")
    values: dict[str, str] = {}
    for name, value in raw.items():
        if name not in SEGMENT_FILTERS and not name.startswith(USER_PREFIX):
            raise _refuse(f"filters.{name}", "Unknown filter; use feature, age, gender, account or user.<property>.")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise _refuse(f"filters.{name}", "Give a non-empty text value.")
        if "\x00" in str(value):
            raise _refuse(f"filters.{name}", "Must not contain NUL characters.")
        values[name] = str(value).strip()
    try:
        validated = filters_validate(org, values)
    except DomainError as exc:
        field = next(iter(exc.errors), "filters")
        messages = exc.errors.get(field, [exc.detail])
        raise DomainError(f"filters.{field}: {messages[0]}", errors={f"filters.{field}": messages}) from exc
    cleaned = {k: v for k, v in values.items() if k.startswith(USER_PREFIX)}
    if "feature" in validated:
        cleaned["feature"] = validated["feature"].key
    for name in ("age", "gender"):
        if name in validated:
            cleaned[name] = validated[name]
    if "account" in validated:
        cleaned["account"] = validated["account"].external_id
    return dict(sorted(cleaned.items()))


def segment_list(org: Organization) -> QuerySet[Segment]:
    return Segment.objects.filter(organization=org).order_by("name", "id")


def segment_get(org: Organization, segment_id: object) -> Segment:
    """One segment of `org`; another organisation's or an unknown id is NotFound."""
    pk = parse_id(segment_id)
    segment = Segment.objects.filter(organization=org, pk=pk).first() if pk is not None else None
    if segment is None:
        raise NotFound("Segment not found.")
    return segment


def _name_clean(name: Any) -> str:
    text = str(name or "").strip()
    if not text:
        raise _refuse("name", "A name is required.")
    if len(text) > 100:
        raise _refuse("name", "At most 100 characters.")
    if any(ord(c) < 32 for c in text):
        raise _refuse("name", "Must not contain control characters (a NUL, a line break, …).")
    return text


def _saved(segment: Segment) -> Segment:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise _refuse("name", "A segment with this name already exists.") from None
    return segment


def segment_create(org: Organization, *, name: str, filters: Any) -> Segment:
    if Segment.objects.filter(organization=org).count() >= MAX_SEGMENTS:
        raise _refuse("name", f"An organisation keeps at most {MAX_SEGMENTS} segments.")
    segment = Segment(organization=org, name=_name_clean(name), filters=segment_filters_clean(org, filters))
    return _saved(segment)


def segment_update(org: Organization, segment_id: object, **changes: Any) -> Segment:
    segment = segment_get(org, segment_id)
    if "name" in changes:
        segment.name = _name_clean(changes["name"])
    if "filters" in changes:
        segment.filters = segment_filters_clean(org, changes["filters"])
    segment.updated_at = timezone.now()
    return _saved(segment)


def segment_delete(org: Organization, segment_id: object) -> None:
    segment_get(org, segment_id).delete()
