"""What management commands share about naming an organisation on the command line."""

from django.core.management.base import CommandError

from .models import Organization


def organization_named(ref: str) -> Organization:
    """The organisation `--org REF` names: its id when REF is all digits (no slug is, so the
    two never collide), else its slug. An unknown one stops the command with a clear error."""
    org = Organization.objects.filter(**({"pk": int(ref)} if ref.isdigit() else {"slug": ref})).first()
    if org is None:
        raise CommandError(f"Unknown organisation: {ref}")
    return org
