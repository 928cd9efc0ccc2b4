"""Saved segments in the pages: "Save as segment" from a page's filters (a segment it used
expanded, typed filters winning), the Segments list, delete; another organisation's segment
is a 404, a member gets 403."""

import re

import pytest

from analytics import segments
from analytics.models import Segment

from .conftest import shared_admin_fixture
from .test_pages import page_client

pytestmark = pytest.mark.django_db


admin_user = shared_admin_fixture("data", "filters_shared")


@pytest.fixture
def data(filters_shared, org):
    return filters_shared[1]


@pytest.fixture
def analyst(analyst_user):
    return page_client(analyst_user)


def test_a_pages_filters_are_saved_as_a_segment_and_picked_back_there(analyst, org, data):
    form = analyst.get("/segments/new/?next=/features/&age=18-40&gender=F&start=2026-11-01")
    html = form.content.decode()
    assert form.status_code == 200
    listed = re.findall(r'<span class="mono">([^<]+)</span> = ([^<]+)<input', html)
    assert listed == [("age", "18-40"), ("gender", "F")]  # the range is not a filter
    saved = analyst.post("/segments/new/", {"name": "Young women", "next": "/features/", "age": "18-40", "gender": "F"})
    segment = Segment.objects.get(organization=org, name="Young women")
    assert segment.filters == {"age": "18-40", "gender": "F"}
    assert saved.status_code == 302 and saved["Location"] == f"/features/?segment={segment.pk}"
    page = analyst.get(saved["Location"]).content.decode()
    assert f'<option value="{segment.pk}" selected>Young women</option>' in page
    assert "Segment “Young women” saved" in page


def test_a_segment_in_use_and_the_filters_typed_on_top_are_saved_together(analyst, org, data):
    women = segments.segment_create(org, name="Women", filters={"gender": "F", "age": "18-40"})
    html = analyst.get(f"/segments/new/?segment={women.pk}&gender=M&account=acme").content.decode()
    listed = re.findall(r'<span class="mono">([^<]+)</span> = ([^<]+)<input', html)
    assert listed == [("account", "acme"), ("age", "18-40"), ("gender", "M")]


def test_nothing_to_save_bad_values_and_foreign_next_pages(analyst, org, data):
    empty = analyst.get("/segments/new/?next=/").content.decode()
    assert 'data-testid="segment-no-filters"' in empty
    unnamed = analyst.post("/segments/new/", {"name": " ", "gender": "F"})
    assert unnamed.status_code == 400 and "A name is required." in unnamed.content.decode()
    nul = analyst.post("/segments/new/", {"name": "a\x00b", "gender": "F"})
    assert nul.status_code == 400 and "control characters" in nul.content.decode()
    bad = analyst.post("/segments/new/", {"name": "Bad", "gender": "Z"})
    assert bad.status_code == 400 and 'data-testid="segment-error"' in bad.content.decode()
    away = analyst.post("/segments/new/", {"name": "Away", "gender": "F", "next": "https://evil.example/"})
    assert away["Location"].startswith("/?segment=")
    sorted_page = analyst.post("/segments/new/", {"name": "Kept", "gender": "M", "next": "/features/?sort=name"})
    assert sorted_page["Location"].startswith("/features/?sort=name&segment=")
    assert not Segment.objects.filter(name__in=["Bad", " "]).exists()


def test_saving_a_segment_goes_back_to_the_page_as_it_was_the_segment_in_place_of_its_filters(analyst, org, data):
    for page, back_to in (
        (
            "/?start=2026-11-01&end=2026-11-20&gender=F&age=18-40&breakdown=age",
            "/?start=2026-11-01&end=2026-11-20&breakdown=age",
        ),
        (
            "/features/?start=2026-11-01&end=2026-11-20&sort=name&age=18-40&age=&gender=F&page=2",
            "/features/?start=2026-11-01&end=2026-11-20&sort=name",
        ),
    ):
        name = f"Young women of {page.split('?')[0]}"
        link = re.search(r'href="([^"]+)"[^>]*data-testid="segment-save-link"', analyst.get(page).content.decode())
        form = analyst.get(link.group(1).replace("&amp;", "&")).content.decode()
        back = re.search(r'name="next" value="([^"]+)"', form).group(1).replace("&amp;", "&")
        saved = analyst.post("/segments/new/", {"name": name, "next": back, "gender": "F", "age": "18-40"})
        segment = Segment.objects.get(organization=org, name=name)
        assert saved["Location"] == f"{back_to}&segment={segment.pk}"


def test_the_segments_list_and_delete(analyst, org, data, other_org):
    mine = segments.segment_create(org, name="Pro plan", filters={"user.plan": "pro"})
    theirs = segments.segment_create(other_org, name="Not yours", filters={"gender": "M"})
    html = analyst.get("/segments/").content.decode()
    assert "Pro plan" in html and "user.plan" in html and "Not yours" not in html
    assert analyst.post(f"/segments/{theirs.pk}/delete/").status_code == 404
    gone = analyst.post(f"/segments/{mine.pk}/delete/", follow=True).content.decode()
    assert 'data-testid="segments-empty"' in gone and "Segment “Pro plan” deleted." in gone
    assert Segment.objects.filter(pk=theirs.pk).exists()
    assert 'data-testid="segment-save-link"' in analyst.get("/").content.decode()


def test_members_cannot_reach_segments(member_user):
    member = page_client(member_user)
    for url in ("/segments/", "/segments/new/?gender=F"):
        assert member.get(url).status_code == 403, url
