"""The last-admin rule holds across paths: the API's service and the Django admin's form ask
one check, which locks the organisation's admins."""

import pytest
from django.db import connection, transaction
from django.urls import reverse

from conftest import make_member, make_org
from core.testing import waits_for_held
from tenants import services
from tenants.admin import UserAdmin, UserEditForm
from tenants.models import Role, User


def admin_form(user: User, **change) -> UserEditForm:
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "organization": user.organization_id,
        "role": user.role,
        "is_active": user.is_active,
        **change,
    }
    return UserEditForm(data=data, instance=user)


@pytest.mark.django_db
def test_the_admin_form_refuses_the_last_admin_and_lets_one_of_two_go():
    first = make_org("Pair Co")
    form = admin_form(first, role=Role.MEMBER)
    assert not form.is_valid()
    assert "last active admin of Pair Co" in str(form.non_field_errors())
    make_member(first.organization, Role.ADMIN)
    assert admin_form(first, role=Role.MEMBER).is_valid()


@pytest.mark.django_db(transaction=True)
def test_delete_selected_checks_and_deletes_in_one_transaction(client, monkeypatch):
    """Django runs actions outside a transaction: the check's locks would be gone before the
    rows are deleted."""
    member = make_member(make_org("Shrink Co").organization, Role.MEMBER)
    client.force_login(User.objects.create_superuser(email="root@platform.example", password="x-Staff-42"))
    in_transaction = []
    delete_queryset = UserAdmin.delete_queryset

    def recording(self, request, queryset):
        in_transaction.append(connection.in_atomic_block)
        delete_queryset(self, request, queryset)

    monkeypatch.setattr(UserAdmin, "delete_queryset", recording)
    client.post(
        reverse("admin:tenants_user_changelist"),
        {"action": "delete_selected", "_selected_action": [member.pk], "post": "yes"},
    )
    assert in_transaction == [True]
    assert not User.objects.filter(pk=member.pk).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one write transaction at a time")
@pytest.mark.django_db(transaction=True)
def test_a_demotion_in_the_admin_waits_for_one_through_the_api_and_is_refused():
    """Two admins; one is demoted through the service and its transaction is held open while
    staff demote the other in the Django admin. The admin's check must wait for the first
    transaction and then see that no admin would be left."""
    first = make_org("Race Co")
    org = first.organization
    second = make_member(org, Role.ADMIN)
    valid: list[bool] = []

    def demote_through_the_service():
        services.member_change_role(org=org, user_id=first.pk, role=Role.MEMBER)

    def demote_in_the_admin():
        with transaction.atomic():
            form = admin_form(User.objects.get(pk=second.pk), role=Role.MEMBER)
            valid.append(form.is_valid())
            if valid[-1]:
                form.save()

    message = "the admin's check must wait for the other demotion's transaction"
    waits_for_held(demote_through_the_service, demote_in_the_admin, message)
    assert valid == [False]
    assert User.objects.filter(organization=org, role=Role.ADMIN, is_active=True).count() == 1
