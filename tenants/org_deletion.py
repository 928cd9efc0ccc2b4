"""Deleting an organisation: unusable at once, its rows deleted in the background.

Django's cascade deleted an organisation in one transaction inside the admin's request: for
a tenant with millions of events that outlasted gunicorn's timeout, the worker was killed,
the transaction rolled back, and the organisation could never be deleted, while its keys
kept working (docs/decisions.md, 2026-12-04). Now the request only marks it
(`organizations_deletion_request`) and shuts it through the paths every check already
refuses: its keys revoked, its people deactivated, its invitations withdrawn. A Celery task
then runs `organization_delete_run`: every table that points at the organisation emptied
CHUNK_ROWS rows at a time, each chunk its own short transaction, then the organisation
itself through Django's cascade, which by then finds nothing left.

Runs take turns through a lease (`deletion_heartbeat_at`): a run that dies mid-way leaves
committed chunks only, and once its lease is older than LEASE the beat entry
`organization-deletions-resume` sends another, which carries on where it stopped.

Tenants imports no app above it: the tables are found through the app registry (every model
with a foreign key to Organization), so a table added later is covered without a change here."""

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, router, transaction
from django.db.models import DateField, F, Model, Q, QuerySet
from django.utils import timezone

from core.task_queue import task_send_on_commit_or_later

from .models import ApiKey, Invitation, Organization, User
from .services import api_keys_forget

logger = logging.getLogger(__name__)

DELETE_TASK = "tenants.organization_delete"
# Rows a chunk deletes in one statement and transaction: a fraction of a second on the
# events table, and within SQLite's limit of variables in one statement.
CHUNK_ROWS = 10_000
# A task's run stops after this long and sends the next, so the other tasks queued on a
# worker (the hourly rollup) take their turn during a long deletion.
RUN_SECONDS = 60.0
# A run renews its lease with every chunk; one this old belongs to a run that died.
LEASE = timedelta(minutes=10)
# Progress goes to the log at most this often (and when a run ends).
LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Table:
    """A table whose rows point at the organisation, and how its chunks are deleted."""

    model: type[Model]
    org_field: str
    # A date or time column that an index leads with the organisation: chunks follow it, so
    # each DELETE names the range its rows span; on the events table, partitioned by month
    # on PostgreSQL, that is the one or two partitions they are in.
    order_by: str | None
    # Rows that tables without an organisation of their own point at (admin log entries,
    # webhook deliveries, group memberships): Django's collector deletes a chunk with them.
    # Every other table goes by a plain DELETE, since what points at it was emptied before.
    cascade: bool

    @property
    def label(self) -> str:
        return self.model._meta.label


@dataclass(frozen=True)
class DeletionRun:
    """What one run did: `state` is done (the organisation is gone), paused (out of time;
    `lease` is for the next run), busy (another run holds the lease) or gone (nothing to
    delete); `rows` by this run, `total` by every run of this deletion."""

    org_id: int
    state: str
    rows: int
    total: int
    lease: datetime | None = None


class LeaseLost(Exception):
    """Another run took the deletion over (this one stalled past LEASE)."""


# --- At once, in the request -----------------------------------------------------------------


def organizations_deletion_request(orgs: Iterable[Organization], *, send_task: bool = True) -> list[int]:
    """Mark `orgs` as being deleted and shut them, in one transaction: their API keys are
    revoked (ingestion answers 401, as for any revoked key), their people deactivated
    (sign-in refused, sessions and tokens no longer accepted), their pending invitations
    withdrawn. Platform staff who belong to one keep their access to the admin (the cascade
    removes their account with the organisation, as before). Sends the deletion task once
    committed (`send_task=False`: the caller runs the deletion itself); returns the ids.
    Asking again for one already being deleted only sends the task again."""
    ids = sorted({org.pk for org in orgs})
    now = timezone.now()
    with transaction.atomic():
        Organization.objects.filter(pk__in=ids, deletion_requested_at__isnull=True).update(deletion_requested_at=now)
        ApiKey.objects.filter(organization_id__in=ids, revoked_at__isnull=True).update(revoked_at=now)
        User.objects.filter(organization_id__in=ids, is_active=True, is_staff=False).update(is_active=False)
        Invitation.objects.filter(organization_id__in=ids, accepted_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=now
        )
        api_keys_forget()
        for org_id in ids if send_task else ():
            task_send_on_commit_or_later(DELETE_TASK, org_id=org_id)
    for org_id in ids:
        logger.info("organisation %s: deletion requested", org_id)
    return ids


def deletion_state(org: Organization) -> str:
    """How the admin lists the organisation: "active", or since when it is being deleted."""
    if org.deletion_requested_at is None:
        return "active"
    return f"being deleted since {org.deletion_requested_at:%Y-%m-%d %H:%M} UTC ({org.deletion_rows:,} rows so far)"


# --- In the background ------------------------------------------------------------------------


def deletions_stalled() -> list[int]:
    """Organisations being deleted whose run is not at work (none yet, or one that died):
    what the beat entry sends a run for."""
    expired = timezone.now() - LEASE
    stalled = Organization.objects.filter(deletion_requested_at__isnull=False).filter(
        Q(deletion_heartbeat_at__isnull=True) | Q(deletion_heartbeat_at__lt=expired)
    )
    return list(stalled.order_by("pk").values_list("pk", flat=True))


def organization_delete_run(
    org_id: int,
    *,
    lease: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    seconds: float | None = RUN_SECONDS,
    progress: Callable[[str, int], None] | None = None,
) -> DeletionRun:
    """Delete the rows of organisation `org_id` (marked by `organizations_deletion_request`)
    chunk by chunk, then the organisation; stop after `seconds` (None: until done), having
    deleted at least one chunk. `lease`: the previous run's, to carry on without waiting
    for it to expire. `progress(table label, rows deleted by this run)` after each chunk."""
    claimed = _lease_claim(org_id, lease)
    if claimed is None:
        return _not_claimed(org_id)
    run = _Run(org_id=org_id, lease=claimed, chunk_rows=chunk_rows, progress=progress)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while run.pass_delete(deadline):
            pass
        if run.paused:
            logger.info("organisation %s: %s rows deleted by this run, %s so far", org_id, run.rows, run.total)
            return DeletionRun(org_id, "paused", run.rows, run.total, run.lease)
        run.organization_delete()
    except LeaseLost:
        logger.warning("organisation %s: another run took the deletion over after %s rows", org_id, run.rows)
        return DeletionRun(org_id, "busy", run.rows, run.total)
    except BaseException as exc:
        # The failed chunk was rolled back. The lease goes, so that the next run (the beat
        # entry's, or the command again after a Ctrl-C) need not wait for it to expire.
        if isinstance(exc, Exception):
            logger.exception("organisation %s: deletion stopped after %s rows; it resumes later", org_id, run.rows)
        _lease_release(org_id, run.lease)
        raise
    logger.info("organisation %s: deleted (%s rows)", org_id, run.total)
    return DeletionRun(org_id, "done", run.rows, run.total)


def _lease_claim(org_id: int, lease: datetime | None) -> datetime | None:
    """The new lease when this run may work on the organisation: it is being deleted and no
    run holds it (or `lease`, the previous run's, still does)."""
    now = timezone.now()
    free = Q(deletion_heartbeat_at__isnull=True) | Q(deletion_heartbeat_at__lt=now - LEASE)
    if lease is not None:
        free |= Q(deletion_heartbeat_at=lease)
    marked = Organization.objects.filter(pk=org_id, deletion_requested_at__isnull=False)
    return now if marked.filter(free).update(deletion_heartbeat_at=now) else None


def _lease_release(org_id: int, lease: datetime) -> None:
    with suppress(DatabaseError):  # a database out of reach: the lease expires instead
        Organization.objects.filter(pk=org_id, deletion_heartbeat_at=lease).update(deletion_heartbeat_at=None)


def _not_claimed(org_id: int) -> DeletionRun:
    org = Organization.objects.filter(pk=org_id).first()
    if org is None or org.deletion_requested_at is None:
        return DeletionRun(org_id, "gone", 0, 0)
    logger.info("organisation %s: another run is deleting it (lease of %s)", org_id, org.deletion_heartbeat_at)
    return DeletionRun(org_id, "busy", 0, org.deletion_rows)


class _Run:
    def __init__(
        self, *, org_id: int, lease: datetime, chunk_rows: int, progress: Callable[[str, int], None] | None
    ) -> None:
        self.org_id, self.lease, self.chunk_rows, self.progress = org_id, lease, chunk_rows, progress
        self.rows = 0
        self.total = Organization.objects.filter(pk=org_id).values_list("deletion_rows", flat=True).first() or 0
        self.paused = False
        self.logged_at = time.monotonic()

    def pass_delete(self, deadline: float | None) -> bool:
        """One pass over every table; True when it deleted anything (rows written meanwhile,
        by a request or a rollup already under way, are caught by the next pass)."""
        deleted = 0
        for table in deletion_plan():
            while True:
                count = self.chunk_delete(table)
                deleted += count
                if deadline is not None and self.rows and time.monotonic() >= deadline:
                    self.paused = True
                    return False
                if count < self.chunk_rows:
                    break
        return deleted > 0

    def chunk_delete(self, table: Table) -> int:
        using = router.db_for_write(table.model)
        with transaction.atomic(using=using):
            count = _chunk_delete(table, self.org_id, self.chunk_rows, using)
            if count:
                self.lease_renew(count)
        if count:
            self.rows += count
            self.total += count
            if self.progress is not None:
                self.progress(table.label, self.rows)
            if time.monotonic() - self.logged_at >= LOG_EVERY_SECONDS:
                self.logged_at = time.monotonic()
                logger.info("organisation %s: %s rows deleted so far (%s)", self.org_id, self.total, table.label)
        return count

    def lease_renew(self, count: int) -> None:
        now = timezone.now()
        renewed = Organization.objects.filter(pk=self.org_id, deletion_heartbeat_at=self.lease).update(
            deletion_heartbeat_at=now, deletion_rows=F("deletion_rows") + count
        )
        if not renewed:
            raise LeaseLost
        self.lease = now

    def organization_delete(self) -> None:
        """The organisation row, through Django's cascade: what the passes left (nothing, or
        rows written since the last one) goes with it, signals and all."""
        with transaction.atomic():
            org = Organization.objects.select_for_update().filter(pk=self.org_id, deletion_heartbeat_at=self.lease)
            found = org.first()
            if found is None:
                raise LeaseLost
            found.delete()


def _chunk_delete(table: Table, org_id: int, rows: int, using: str) -> int:
    manager = table.model._base_manager.db_manager(using)
    owned = manager.filter(**{table.org_field: org_id})
    if table.order_by is not None:
        found = list(owned.order_by(table.order_by).values_list("pk", table.order_by)[:rows])
        if not found:
            return 0
        pks = [pk for pk, _ in found]
        span = {f"{table.order_by}__gte": found[0][1], f"{table.order_by}__lte": found[-1][1]}
        chunk: QuerySet[Model] = owned.filter(pk__in=pks, **span)
    else:
        pks = list(owned.order_by().values_list("pk", flat=True)[:rows])
        if not pks:
            return 0
        chunk = owned.filter(pk__in=pks)
    if table.cascade:
        return chunk.delete()[0]
    # Django's DELETE without its collector (what the collector runs itself for a table
    # nothing points at): the collector would look for rows pointing at these in every
    # table that can, by a foreign key no index leads (the events' end user), a scan of
    # every tenant's rows per chunk, to find what the passes before emptied already.
    return chunk._raw_delete(using)


@cache
def deletion_plan() -> list[Table]:
    """Every table with a foreign key to Organization, each before the tables it points at
    (the events before the features and end users they name), so a plain DELETE of a chunk
    never leaves a row pointing at a deleted one."""
    owned = {model: field for model in apps.get_models() if (field := _org_field(model)) is not None}
    pending = {model: _points_at(model, owned) for model in owned}
    order: list[type[Model]] = []
    while pending:
        ready = [m for m in pending if not any(m in targets for other, targets in pending.items() if other is not m)]
        if not ready:
            cycle = ", ".join(sorted(m._meta.label for m in pending))
            raise ImproperlyConfigured(f"Organisation deletion: foreign keys in a cycle among {cycle}")
        for model in sorted(ready, key=lambda m: m._meta.label):
            order.append(model)
            del pending[model]
    return [Table(m, owned[m], _order_column(m, owned[m]), _pointed_at_from_outside(m, owned)) for m in order]


def _org_field(model: type[Model]) -> str | None:
    if model is Organization or model._meta.proxy or not model._meta.managed:
        return None
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is Organization:
            return field.name
    return None


def _points_at(model: type[Model], owned: dict[type[Model], str]) -> set[type[Model]]:
    targets = {f.related_model for f in model._meta.concrete_fields}
    return {target for target in owned if target in targets and target is not model}


def _pointed_at_from_outside(model: type[Model], owned: dict[type[Model], str]) -> bool:
    """Whether rows of a table without an organisation (or a many-to-many's) point at it."""
    for relation in model._meta.get_fields(include_hidden=True):
        if relation.many_to_many:
            return True
        if relation.auto_created and not relation.concrete and relation.related_model not in owned:
            return True
    return False


def _order_column(model: type[Model], org_field: str) -> str | None:
    led = [list(index.fields) for index in model._meta.indexes]
    led += [list(getattr(c, "fields", ())) for c in model._meta.constraints]
    for fields in led:
        if len(fields) >= 2 and fields[0] == org_field:
            column = model._meta.get_field(fields[1].lstrip("-"))
            # A DateTimeField is a DateField too; a null bounds no range.
            if isinstance(column, DateField) and not column.null:
                return column.name
    return None
