"""Organisations: self-service sign-up (a new organisation with its first admin) and changes
to an organisation's settings; the password rules every new account passes."""

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from core.exceptions import DomainError

from ..models import Organization, Role, User, organization_slug_validate
from .api_keys import api_keys_forget


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    try:
        organization_slug_validate(base)
    except ValidationError:
        base = f"org-{base}"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def password_check(*, password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise DomainError(exc.messages[0], errors={"password": list(exc.messages)})


@transaction.atomic
def organization_register(*, email: str, password: str, organization_name: str, full_name: str = "") -> User:
    """Self-service sign-up: always a NEW organisation, with the registrant as its admin."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise DomainError("An account with this e-mail already exists.", errors={"email": ["Already registered."]})
    password_check(password=password, user=User(email=email, full_name=full_name))
    org = Organization.objects.create(name=organization_name.strip(), slug=_unique_slug(organization_name))
    return User.objects.create_user(
        email=email, password=password, full_name=full_name, organization=org, role=Role.ADMIN
    )


def organization_update(*, org: Organization, **fields: Any) -> Organization:
    """Changes the given fields only. A slug must stay unique across organisations."""
    slug = fields.get("slug")
    if slug is not None:
        try:
            organization_slug_validate(slug)
        except ValidationError as exc:
            raise DomainError(exc.messages[0], errors={"slug": exc.messages}) from None
    if slug is not None and Organization.objects.filter(slug=slug).exclude(pk=org.pk).exists():
        raise DomainError("This slug is already taken.", errors={"slug": ["Already taken by another organisation."]})
    for name, value in fields.items():
        setattr(org, name, value)
    if fields:
        org.save(update_fields=list(fields))
        # Cached keys carry their organisation (auto_create_features is read on ingestion).
        api_keys_forget()
    return org
