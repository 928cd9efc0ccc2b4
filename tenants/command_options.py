"""What management commands share about naming an organisation on the command line."""

from django.core.management.base import CommandError

from .models import Organization

# A bigint holds at most 19 digits; a longer id can name no organisation (and would overflow).
_MAX_ID_DIGITS = 18


def organization_named(ref: str) -> Organization:
    """The organisation `--org REF` names: its id when REF is all digits (no slug is, so the
    two never collide), else its slug. An unknown one stops the command with a clear error.
    Digits are ASCII ones: `str.isdigit` also takes "²", which `int` refuses; an id past
    the database's bigint names nothing."""
    as_id = ref.isascii() and ref.isdigit() and len(ref) <= _MAX_ID_DIGITS
    lookup = {"pk": int(ref)} if as_id else {"slug": ref}
    org = Organization.objects.filter(**lookup).first()
    if org is None:
        raise CommandError(f"Unknown organisation: {ref}")
    return org
