"""One paging behaviour for every list of the API: `core.pagination`'s (org/members,
ai/anomalies, …) and analytics' pages cut by their query (user-activity, accounts) refuse a
bad `page` or `page_size` with a 400 naming it, and answer a page past the end the same way."""

from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.django_db

LISTS = ["/api/v1/org/members", "/api/v1/ai/anomalies", "/api/v1/analytics/user-activity", "/api/v1/analytics/accounts"]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("page=abc", "page", "A valid integer is required."),
        ("page=0", "page", "Must be at least 1."),
        ("page=99999999999", "page", "Must be at most 10000000."),
        ("page_size=501", "page_size", "Must be at most 500."),
        ("page_size=0", "page_size", "Must be at least 1."),
        ("page_size=null", "page_size", "A valid integer is required."),
    ],
)
def test_bad_paging_is_a_400_naming_the_parameter(admin_client, url, query, field, message):
    response = admin_client.get(f"{url}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {field: [message]}


@pytest.mark.parametrize("url", LISTS)
def test_a_page_past_the_end_is_empty_and_links_the_last_page(admin_client, url):
    body = admin_client.get(f"{url}?page=99&page_size=5").json()
    assert body["results"] == [] and body["next"] is None
    assert parse_qs(urlsplit(body["previous"]).query) == {"page": ["1"], "page_size": ["5"]}
    first = admin_client.get(f"{url}?page_size=500").json()
    assert first["previous"] is None and first["next"] is None
