"""The funnel builder's steps and result as worded on the page: a step is named after the
organisation's feature of that key, used in the range or not, and counts say "user" or
"users" as they should."""

import re
from datetime import timedelta

import pytest

from analytics import rollup
from core.days import today
from core.testing import page_client

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(analyst_user):
    return page_client(analyst_user)


@pytest.fixture
def one_searcher(org):
    """One person who searched and exported yesterday, and a feature used only 60 days ago."""
    search, export = feature(org, "search"), feature(org, "export", "Export to CSV")
    archive = feature(org, "archive_v2", "Archive (old)")
    yesterday, long_ago = today() - timedelta(days=1), today() - timedelta(days=60)
    person = end_user(org, "p1", first_seen=at(long_ago.isoformat()))
    event(org, archive, person, at(long_ago.isoformat()))
    event(org, search, person, at(yesterday.isoformat(), "09:00:00"))
    event(org, export, person, at(yesterday.isoformat(), "09:30:00"))
    rollup.rollup_range(long_ago, today(), org)


def test_a_feature_unused_in_the_range_is_named_not_called_an_event_type(analyst, one_searcher):
    html = analyst.get("/funnels/?step=search&step=archive_v2").content.decode()
    names = re.findall(r'data-testid="step-name">([^<]*)<', html)
    assert names == ["Search", "Archive (old)"]
    assert "no feature has this key" not in html
    labels = re.findall(r'<div class="funnel-label"[^>]*><span class="step-num">\d</span> ([^<]*)</div>', html)
    assert labels == ["Search", "Archive (old)"]
    assert '<option value="archive_v2">Archive (old)</option>' in html  # the builder's list
    # A key no feature has is said not to be one (and "refund", which no one sent, is refused).
    typed = analyst.get("/funnels/?step=search&step=refund").content.decode()
    assert "not a feature's key: an event type, or a feature's name or id" in typed
    assert "Step 2, &#x27;refund&#x27;, is no feature" in typed and "steps:" not in typed


def test_a_step_named_by_its_feature_is_shown_as_its_key_and_a_comma_stays_in_its_step(analyst, org, one_searcher):
    # A feature's name typed into a step was kept as typed, its caption calling it an event
    # type; a name holding a comma was cut in two steps.
    feature(org, "leagues", "20,000 Leagues Under the Sea")
    html = analyst.get("/funnels/?step=Export+to+CSV&step=20%2C000+Leagues+Under+the+Sea").content.decode()
    assert 'data-testid="funnel-error"' not in html
    assert re.findall(r'value="([^"]*)"[^>]*data-testid="step-input"', html) == ["export", "leagues"]
    assert re.findall(r'data-testid="step-name">([^<]*)<', html) == ["Export to CSV", "20,000 Leagues Under the Sea"]


def test_funnel_counts_say_user_or_users(analyst, one_searcher):
    html = analyst.get("/funnels/?step=search&step=export&step=archive_v2").content.decode()
    metas = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m)).strip()
        for m in re.findall(r'<div class="funnel-meta">(.*?)</div>', html, re.S)
    ]
    assert [m.split(" ·")[0] for m in metas] == ["1 user", "1 user", "0 users"]
