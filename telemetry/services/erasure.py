"""Erasing end users (a person asking to be forgotten): their raw events, their profile and
every per-user rollup row go at once; the past days they were active are marked for
re-rollup (`DirtyDay`), so the next rollup recomputes the organisation's, features' and
segments' figures without them. Nothing is kept that names them."""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import cast

from django.db import connection, transaction
from django.db.models import CASCADE, DO_NOTHING, PROTECT, RESTRICT, SET_NULL, Model, QuerySet, RestrictedError
from django.db.models.deletion import Collector
from django.db.models.fields.reverse_related import ManyToOneRel

from ..models import EndUser, UsageEvent
from .storage.dirty_days import days_mark_dirty

# Rows of the deleted events read back at a time: a bot's million events never sit in memory.
RETURNED_CHUNK = 10_000


@dataclass(frozen=True)
class Erased:
    end_users: int
    events: int
    days_to_reroll: int


def end_users_erase(users: QuerySet[EndUser]) -> Erased:
    """Erase `users` (of any organisations) and their events; see the module's docstring."""
    with transaction.atomic():
        people = list(users.values_list("pk", "organization_id"))
        if not people:
            return Erased(0, 0, 0)
        ids = [pk for pk, _ in people]
        days: dict[int, set[date]] = defaultdict(set)
        events = 0
        org_ids = sorted({org_id for _, org_id in people})
        for org_id, moment in _events_delete(org_ids, ids):
            days[org_id].add(_utc_day(moment))
            events += 1
        marked = sum(days_mark_dirty(org_id, org_days) for org_id, org_days in days.items())
        _per_user_rows_delete(org_ids, ids)
        _end_users_delete(ids)
    return Erased(len(ids), events, marked)


def _per_user_rows_delete(org_ids: list[int], user_ids: list[int]) -> None:
    """The rows of every model that points at an end user (the per-user rollups, whose
    ForeignKeys cascade), each deleted with the organisations in its condition. Django's own
    cascade, `WHERE end_user_id IN (…)` alone, matches none of those tables' indexes (led by
    the organisation) and read them whole: 3.6 s to erase one person at 10 M events
    (docs/benchmarks.md, 2026-12-03)."""
    pointing_rows_delete(EndUser, user_ids, org_ids, skip=(UsageEvent,))


def pointing_rows_delete(
    target: type[Model], ids: list[int], org_ids: list[int], *, skip: tuple[type[Model], ...] = ()
) -> None:
    """What Django's delete of `target`'s rows `ids` would do to the rows pointing at them
    (cascade deleted, SET_NULL set to null, PROTECT refused…; the models in `skip` left to
    the caller), with the organisations `org_ids` in every condition, so that tables whose
    indexes lead with the organisation are read by index, not whole. The apps below
    telemetry are reached through the relations, not imported."""
    for relation, rows in _pointing_rows(target, ids, org_ids, skip):
        if relation.on_delete is SET_NULL:
            rows.update(**{relation.field.name: None})
        elif relation.on_delete is CASCADE:
            rows.delete()
        elif relation.on_delete is not DO_NOTHING and rows.exists():
            # PROTECT, RESTRICT, SET_DEFAULT, SET(…) (no table has one today): Django's own
            # handler, on these rows only: it refuses or collects the updates. Only when there
            # are rows, as Django's collector calls it (PROTECT names the first row it
            # protects, and has none to name otherwise).
            _handled(relation, rows, target).delete()


def pointing_rows_refusal_check(target: type[Model], ids: list[int], org_ids: list[int]) -> None:
    """Raise what `pointing_rows_delete` would raise for `target`'s rows `ids` (ProtectedError,
    RestrictedError) without changing anything: asked first by a delete that goes in several
    transactions, so that a refused one has deleted nothing."""
    for relation, rows in _pointing_rows(target, ids, org_ids):
        if relation.on_delete in (PROTECT, RESTRICT) and rows.exists():
            _handled(relation, rows, target)


def _pointing_rows(
    target: type[Model], ids: list[int], org_ids: list[int], skip: tuple[type[Model], ...] = ()
) -> Iterator[tuple[ManyToOneRel, QuerySet[Model]]]:
    """Each relation pointing at `target` (but from the models in `skip`) with its rows that
    point at `ids`, the organisations `org_ids` in the condition where the table has one."""
    for relation in target._meta.get_fields(include_hidden=True):
        if not isinstance(relation, ManyToOneRel) or relation.related_model in skip:
            continue
        model = cast(type[Model], relation.related_model)
        rows = model._base_manager.filter(**{f"{relation.field.name}__in": ids})
        if any(field.name == "organization" for field in model._meta.fields):
            rows = rows.filter(organization_id__in=org_ids)
        yield relation, rows


def _handled(relation: ManyToOneRel, rows: QuerySet[Model], target: type[Model]) -> Collector:
    """Django's on_delete handler of `relation` run on `rows`: a collector of the updates it
    asks for; ProtectedError (PROTECT) or RestrictedError (RESTRICT) when it refuses."""
    collector = Collector(using=rows.db, origin=rows)
    relation.on_delete(collector, relation.field, rows, rows.db)
    if collector.restricted_objects:
        raise RestrictedError(f"{rows.model.__name__} rows still point at the {target.__name__} rows", set(rows))
    return collector


def _end_users_delete(user_ids: list[int]) -> None:
    """The end users themselves, once nothing points at them: a plain DELETE, since the ORM's
    would run its cascades and its SET NULL of the events again, each a scan that finds
    nothing left."""
    table = connection.ops.quote_name(EndUser._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(user_ids))})", user_ids)


def _events_delete(org_ids: list[int], user_ids: list[int]) -> Iterator[tuple[int, datetime | str]]:
    """Deletes the events of `user_ids` and yields each one's (organisation, timestamp): one
    pass over them, which names exactly the days of the rows it deleted (an event ingested
    meanwhile is deleted and its day marked, or kept). The organisations lead the condition
    so the (organization, end_user, timestamp) index finds the rows, not a scan of every
    tenant's events."""
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    orgs, users = ", ".join(["%s"] * len(org_ids)), ", ".join(["%s"] * len(user_ids))
    sql = (
        f'DELETE FROM {table} WHERE "organization_id" IN ({orgs}) AND "end_user_id" IN ({users}) '
        'RETURNING "organization_id", "timestamp"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*org_ids, *user_ids])
        while rows := cursor.fetchmany(RETURNED_CHUNK):
            yield from rows


def _utc_day(moment: datetime | str) -> date:
    # PostgreSQL returns an aware datetime; SQLite the UTC text Django stored.
    if isinstance(moment, str):
        return datetime.fromisoformat(moment).date()
    return moment.astimezone(UTC).date()
