"""The one page decorator and the page helpers: who gets in, what everyone else gets, and the
paging rules. Users come from the shared fixtures (core imports no app)."""

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django_htmx.middleware import HtmxDetails

from core.exceptions import DomainError, Forbidden, NotFound
from core.pages import form_add_domain_error, org_page, page_fetched, page_get, params_or_default

pytestmark = pytest.mark.django_db


def _request(rf, user, path="/features/?sort=name", headers=None):
    request = rf.get(path, headers=headers or {})
    request.user = user
    request.htmx = HtmxDetails(request)
    return request


@org_page("analyst")
def _page(request):
    return HttpResponse(f"org {request.org.pk}")


@org_page("analyst")
def _raises(request, exc):
    raise exc


def test_a_member_of_the_role_gets_the_page_with_its_organisation_and_no_store(rf, analyst_user, admin_user):
    for user in (analyst_user, admin_user):  # admin ⊃ analyst
        response = _page(_request(rf, user))
        assert response.content.decode() == f"org {user.organization_id}"
        assert "no-store" in response["Cache-Control"]


def test_anonymous_is_sent_to_login(rf):
    response = _page(_request(rf, AnonymousUser()))
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/features/%3Fsort%3Dname"


def test_anonymous_htmx_reloads_the_page_it_shows_on_the_login_page(rf):
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/users/?x=1"}
    response = _page(_request(rf, AnonymousUser(), "/settings/members/3/role/", headers))
    assert response.status_code == 200 and "Location" not in response
    assert response["HX-Redirect"] == "/login/?next=%2Fusers%2F%3Fx%3D1"
    # Without HX-Current-URL: back to the URL asked for.
    assert _page(_request(rf, AnonymousUser(), headers={"HX-Request": "true"}))["HX-Redirect"] == (
        "/login/?next=/features/%3Fsort%3Dname"
    )


def test_a_lower_role_or_no_organisation_is_the_403_page(rf, member_user):
    with pytest.raises(PermissionDenied, match="analyst or admin role"):
        _page(_request(rf, member_user))
    staff = get_user_model().objects.create_user(email="staff@example.com", password="x", is_staff=True)
    with pytest.raises(PermissionDenied, match="Platform staff accounts have no organisation"):
        _page(_request(rf, staff))


def test_domain_errors_are_the_404_and_403_pages(rf, analyst_user):
    with pytest.raises(Http404, match="Feature not found."):
        _raises(_request(rf, analyst_user), NotFound("Feature not found."))
    with pytest.raises(PermissionDenied, match="Not yours."):
        _raises(_request(rf, analyst_user), Forbidden("Not yours."))
    with pytest.raises(DomainError):  # any other status is left to the error middleware
        _raises(_request(rf, analyst_user), DomainError("Bad.", status_code=409))


def test_page_get_never_refuses_a_page_number():
    paginator = Paginator(list(range(7)), 3)
    assert [page_get(paginator, raw).number for raw in ("2", "99", "0", "-4", "x", None, "9" * 5000)] == [
        2, 3, 1, 1, 1, 1, 1,
    ]  # fmt: skip


def test_page_fetched_asks_the_database_once_per_page():
    rows = list(range(12))
    asked = []

    def fetch(number):
        asked.append(number)
        return rows[(number - 1) * 5 : number * 5], len(rows)

    page = page_fetched(fetch, number=2, per_page=5)
    assert (page.object_list, page.number, page.paginator.num_pages) == ([5, 6, 7, 8, 9], 2, 3)
    assert page.has_previous() and page.has_next() and asked == [2]
    asked.clear()
    last = page_fetched(fetch, number=40, per_page=5)  # past the end: the last page
    assert (last.object_list, last.number, last.previous_page_number()) == ([10, 11], 3, 2)
    assert not last.has_next() and asked == [40, 3]
    asked.clear()
    empty = page_fetched(lambda number: asked.append(number) or ([], 0), number=4, per_page=5)
    assert (empty.object_list, empty.number, empty.has_previous(), asked) == ([], 1, False, [4])


def test_params_or_default_shows_the_message_with_the_defaults():
    def parse(query):
        if query.get("days") == "x":
            raise DomainError("days: A number is required.")
        return {"days": int(query.get("days", 30))}

    assert params_or_default(parse, {"days": "7"}) == ({"days": 7}, None)
    assert params_or_default(parse, {"days": "x"}) == ({"days": 30}, "days: A number is required.")
    assert params_or_default(parse, {"days": "x"}, {"days": "14"}) == ({"days": 14}, "days: A number is required.")


class _Form(forms.Form):
    email = forms.EmailField()


def test_form_add_domain_error_places_field_messages_and_the_summary():
    form = _Form({"email": "a@b.example"})
    assert form.is_valid()
    form_add_domain_error(form, DomainError("Invalid.", errors={"email": ["Taken."]}))
    assert form.errors == {"email": ["Taken."]}
    form = _Form({"email": "a@b.example"})
    form.is_valid()
    form_add_domain_error(form, DomainError("The plan is full.", errors={"plan": ["Full."]}))
    assert form.non_field_errors() == ["The plan is full."]
