"""Members of an organisation: their role and their removal, never leaving an organisation
without an active admin."""

from collections.abc import Iterable

from django.db import transaction

from core.exceptions import DomainError, NotFound
from core.rows import row_update

from ..models import Organization, Role, User


def last_admins_among(users: Iterable[User]) -> list[User]:
    """Those of `users` whose organisation would have no active admin left without all of
    them. Every path that demotes, deactivates, moves or removes people asks it: the API, the
    Settings pages and the Django admin (QA pass 3, F3).

    It locks the organisations' active admin rows (PostgreSQL) until the caller's transaction
    ends, so two staff demoting each other's fellow admins at the same moment, by any path,
    cannot both see "another admin" and leave none; SQLite's IMMEDIATE transactions serialise."""
    admins = [u for u in users if u.organization_id and u.role == Role.ADMIN and u.is_active]
    leaving = {u.pk for u in admins}
    last = []
    with transaction.atomic(savepoint=False):
        for org_id in sorted({u.organization_id for u in admins if u.organization_id is not None}):
            active = User.objects.select_for_update().filter(organization_id=org_id, role=Role.ADMIN, is_active=True)
            if set(active.values_list("pk", flat=True)) <= leaving:
                last += [u for u in admins if u.organization_id == org_id]
    return last


def member_get(*, org: Organization, user_id: int) -> User:
    member = User.objects.filter(organization=org, pk=user_id).first()
    if member is None:
        raise NotFound("Member not found.")
    return member


@transaction.atomic
def member_change_role(*, org: Organization, user_id: int, role: str) -> User:
    member = member_get(org=org, user_id=user_id)
    if role != Role.ADMIN and last_admins_among([member]):
        raise DomainError(
            "The last admin cannot be demoted; make someone else admin first.",
            errors={"role": ["The organisation needs at least one admin."]},
        )
    return row_update(member, missing="Member not found.", role=role)


@transaction.atomic
def member_remove(*, org: Organization, user_id: int) -> None:
    member = member_get(org=org, user_id=user_id)
    if last_admins_among([member]):
        raise DomainError(
            "The last admin cannot be removed; make someone else admin first.",
            errors={"user": ["The organisation needs at least one admin."]},
        )
    member.delete()
