"""The Features page says which features it lists: those used in the range or the period
before it (the API's feature usage), not every tracked one."""

import re
from datetime import timedelta

import pytest

from analytics import rollup
from core.days import today
from core.testing import page_client

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


def test_the_page_says_it_lists_the_features_used_around_the_range(analyst_user, org):
    search, dormant = feature(org, "search"), feature(org, "dormant")
    long_ago, yesterday = today() - timedelta(days=200), today() - timedelta(days=1)
    person = end_user(org, "p1", first_seen=at(long_ago.isoformat()))
    event(org, dormant, person, at(long_ago.isoformat()))
    event(org, search, person, at(yesterday.isoformat()))
    rollup.rollup_range(long_ago, today(), org)
    html = page_client(analyst_user).get("/features/").content.decode()
    assert re.findall(r'href="/features/(\d+)/"', html) == [str(search.pk)]
    subtitle = re.search(r'data-testid="features-subtitle">([^<]*)<', html).group(1)
    assert subtitle.startswith("The features used in this range or the period before it")
    assert "Every tracked feature" not in html
