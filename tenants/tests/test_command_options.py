"""`--org` on the command line: an id, a slug, or a clear error — never a traceback."""

import pytest
from django.core.management.base import CommandError

from tenants.command_options import organization_named
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def test_an_id_and_a_slug_name_the_organisation():
    org = Organization.objects.create(name="Acme", slug="acme")
    assert organization_named(str(org.pk)) == org
    assert organization_named("acme") == org


@pytest.mark.parametrize("ref", ["²", "٣", "9" * 40, "no-such-org"])
def test_what_names_no_organisation_is_a_command_error(ref):
    Organization.objects.create(name="Acme", slug="acme")
    with pytest.raises(CommandError, match="Unknown organisation"):
        organization_named(ref)
