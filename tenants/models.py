from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    ANALYST = "analyst", "Analyst"
    MEMBER = "member", "Member"


# Higher rank includes every right of the lower ones.
ROLE_RANK = {Role.MEMBER: 1, Role.ANALYST: 2, Role.ADMIN: 3}


def organization_slug_validate(slug: str) -> None:
    """Refuses a slug of digits only (Organization.DIGITS_SLUG): the model's field, the API and
    sign-up's slug maker all ask this one rule."""
    if slug.isdigit():
        raise ValidationError(Organization.DIGITS_SLUG, code="digits")


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def in_service(self) -> "OrganizationQuerySet":
        """The organisations not being deleted: what sign-in, the API and the scheduled
        work (rollups, detectors, digests) act on. One being deleted keeps its row until
        its data is gone (tenants.org_deletion)."""
        return self.filter(deletion_requested_at__isnull=True)


class Organization(models.Model):
    class Plan(models.TextChoices):
        STANDARD = "standard", "Standard"
        ENTERPRISE = "enterprise", "Enterprise"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True, validators=[organization_slug_validate])
    plan_type = models.CharField(max_length=20, choices=Plan.choices, default=Plan.STANDARD)
    auto_create_features = models.BooleanField(default=True)
    alert_threshold = models.FloatField(default=3.5)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set when staff delete the organisation: from then on nothing can use it, and a worker
    # deletes its rows chunk by chunk, then the row itself (tenants.org_deletion).
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The deletion run at work: when it last deleted a chunk (its lease: another run takes
    # over only once this is older than org_deletion.LEASE) and the rows deleted so far.
    deletion_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    deletion_rows = models.BigIntegerField(default=0, editable=False)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    # Commands take `--org` as an id when it is all digits, as a slug otherwise: a slug of
    # digits would name another organisation there.
    DIGITS_SLUG = "A slug needs a letter or a dash: an all-digit one reads as another organisation's id."

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("role", Role.ADMIN)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: an organisation's admin/analyst/member, or platform staff (no organisation)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="members"
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    def has_role(self, role):
        """True when the user's role is `role` or above (admin ⊃ analyst ⊃ member)."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


class ApiKey(models.Model):
    """An ingestion key. Only its SHA-256 hash is stored; the prefix identifies it in lists."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Web pages allowed to send with this key from a browser (`scheme://host[:port]`, as
    # core.cors.origin_normalise writes them). Empty: server-side only, browsers refused.
    allowed_origins = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        return self.revoked_at is None

    def origin_allowed(self, origin: str) -> bool:
        """Whether a browser page on `origin` (the request's `Origin` header) may use this key."""
        return origin in self.allowed_origins


class Invitation(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.email} → {self.organization} ({self.role})"

    @property
    def is_pending(self):
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def status(self):
        """pending, accepted, revoked or expired: what the settings list and errors say."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"
