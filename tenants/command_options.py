"""What management commands share about naming an organisation on the command line."""

from django.core.management.base import CommandError

from core.query_params import parse_id

from .models import Organization


def organization_named(ref: str) -> Organization:
    """The organisation `--org REF` names: its id when REF is all digits (no slug is, so the
    two never collide), else its slug. An unknown one stops the command with a clear error.
    An id is read as the APIs read one (`parse_id`: ASCII digits within a bigint; "²" passes
    `str.isdigit` and `int` refuses it)."""
    pk = parse_id(ref)
    org = Organization.objects.filter(**({"pk": pk} if pk is not None else {"slug": ref})).first()
    if org is None:
        raise CommandError(f"Unknown organisation: {ref}")
    return org
