"""The pages' "Download CSV" links: the Features and Users pages give the same file as the
API's `?format=csv` for the same view, every row of it rather than one page; members get none."""

import pytest

from .test_pages import admin_user, analyst, member, member_user, shared_usage, usage  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

RANGE = "start=2026-01-01&end=2026-12-31"


def _csv(response):
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/csv")
    return response.content.decode()


def test_features_csv_is_the_apis_file_for_the_same_view(analyst, analyst_client, usage):  # noqa: F811
    page = analyst.get(f"/features/?{RANGE}&gender=F&format=csv")
    assert page["Content-Disposition"] == 'attachment; filename="features.csv"'
    api = analyst_client.get(f"/api/v1/analytics/feature-usage?{RANGE}&gender=F&format=csv")
    assert _csv(page) == _csv(api)
    assert _csv(page).splitlines()[0].startswith("feature_id,feature_key,feature_name,events")
    html = analyst.get(f"/features/?{RANGE}&gender=F").content.decode()
    assert 'data-testid="csv-download"' in html and "gender=F&amp;format=csv" in html


def test_users_csv_holds_every_user_not_one_page(analyst, analyst_client, usage):  # noqa: F811
    html = analyst.get("/users/?page_size=5&days=365").content.decode()
    assert html.count('data-testid="user-row"') == 5 and 'data-testid="csv-download"' in html
    page = _csv(analyst.get("/users/?page_size=5&days=365&format=csv"))
    api = _csv(analyst_client.get("/api/v1/analytics/user-activity?days=365&format=csv"))
    assert page == api and len(page.splitlines()) > 6


def test_members_get_no_download(member, usage):  # noqa: F811
    response = member.get("/users/?format=csv")
    assert response["Content-Type"].startswith("text/html")
    assert 'data-testid="csv-download"' not in response.content.decode()


@pytest.mark.parametrize("path", ["/features/", "/users/"])
def test_refused_filters_answer_their_message_not_a_file(analyst, usage, path):  # noqa: F811
    # The page shows the figures without the refused filter, next to the message; a file of
    # those figures would read as filtered, so none is made.
    response = analyst.get(f"{path}?age=nonsense&format=csv")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")
    assert "age" in response.content.decode() and "Content-Disposition" not in response
    # Nothing is shown, so the page's "Shown without age." is not said.
    assert "Shown without" not in response.content.decode() and "No file was made" in response.content.decode()
