"""Anomalies that say why: on raw events with known segments, the explanation names the
segment the change was injected into, with its share, and reads only the anomaly's day and
its baseline days, of its own organisation."""

from datetime import timedelta

import pytest

from conftest import make_member
from insights import explain
from insights.models import Anomaly
from insights.tests.helpers import end_users_make, events_make, features_make, same_weekdays_before, yesterday
from telemetry.models import EndUser
from tenants.models import Role

pytestmark = pytest.mark.django_db

DAY = yesterday()
BASELINE = same_weekdays_before(DAY)


@pytest.fixture
def feature(org):
    return features_make(org, 1)[0]


@pytest.fixture
def people(org):
    return end_users_make(org)


def anomaly_for(org, feature, *, metric="event_count", value, expected, score=8.0):
    return Anomaly.objects.create(
        organization=org, feature=feature, date=DAY, detector="timeseries", metric=metric,
        value=value, expected=expected, score=score, severity="medium",
        details={"direction": "spike" if value > expected else "drop"},
    )  # fmt: skip


def best(explanation):
    segment = explanation["segment"]
    return segment["dimension"], segment["value"]


def test_a_spike_of_one_event_type_is_explained_by_it(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20)
    events_make(org, feature, people, days=[DAY], per_day=60, event_type="export")
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=80, expected=20))
    assert best(explanation) == ("event_type", "export")
    segment = explanation["segment"]
    assert segment["share_of_change"] == pytest.approx(1.0)
    assert segment["usual_share"] == 0.0 and segment["value_on_day"] == 60
    assert explanation["concentrated"] is True
    assert explanation["baseline_days"] == [d.isoformat() for d in BASELINE]
    assert explain.explanation_phrase(explanation) == (
        "mostly event type “export” (100 % of the change; usually 0 % of usage)"
    )


def test_a_spike_of_one_gender_is_explained_by_it(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=24)
    women = [p for p in people if p.gender == "F"]
    events_make(org, feature, women, days=[DAY], per_day=48)
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=72, expected=24))
    assert best(explanation) == ("gender", "F")
    assert explanation["segment"]["label"] == "gender “Female”"
    assert explanation["segment"]["share_of_change"] == pytest.approx(1.0)
    assert explanation["segment"]["usual_share"] == pytest.approx(0.5)


def test_a_spike_of_one_event_property_value_is_explained_by_it(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20, metadata={"campaign": "none"})
    events_make(org, feature, people, days=[DAY], per_day=40, metadata={"campaign": "spring"})
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=60, expected=20))
    assert best(explanation) == ("event.campaign", "spring")
    assert explanation["segment"]["label"] == "event campaign = spring"
    assert "user.plan" in explanation["dimensions"]


def test_a_spike_of_one_end_user_property_value_is_explained_by_it(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=24)
    pro = [p for p in people if p.properties["plan"] == "pro"]
    events_make(org, feature, pro, days=[DAY], per_day=36)
    assert best(explain.anomaly_explanation(org, anomaly_for(org, feature, value=60, expected=24))) == (
        "user.plan",
        "pro",
    )


def test_a_spike_of_one_account_is_explained_by_it(org, feature, people):
    model = EndUser._meta.get_field("account").related_model
    if any(f.name == "external_id" for f in model._meta.get_fields()):
        account = model.objects.create(organization=org, external_id="globex", name="Globex")
        label = "Globex"
    else:  # the first schema: an end user's account is a user of the organisation
        account = make_member(org, Role.MEMBER, email="globex@acme.example")
        label = "globex@acme.example"
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=24)
    EndUser.objects.filter(pk__in=[people[0].pk, people[5].pk]).update(account=account)
    events_make(org, feature, [people[0], people[5]], days=[DAY], per_day=50)
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=74, expected=24))
    assert best(explanation) == ("account", str(account.pk))
    assert explanation["segment"]["label"] == f"account “{label}”"


def test_an_even_change_is_spread_not_pinned_on_a_segment(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=24)
    events_make(org, feature, people, days=[DAY], per_day=72)  # the same mix, ×4
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=96, expected=24))
    assert explanation["concentrated"] is False
    segment = explanation["segment"]
    assert abs(segment["share_of_change"] - segment["usual_share"]) < 0.05
    assert explain.explanation_phrase(explanation).startswith("spread across segments; largest: ")


def test_a_drop_is_explained_by_the_segment_that_went_missing(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=15)
    events_make(org, feature, people, days=BASELINE, per_day=15, event_type="export")
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=15, expected=30, score=-8))
    assert best(explanation) == ("event_type", "export")
    assert explanation["segment"]["share_of_change"] == pytest.approx(1.0)
    assert explanation["segment"]["usual_share"] == pytest.approx(0.5)
    assert explanation["segment"]["value_on_day"] == 0


def test_session_length_change_is_explained_by_the_segment_whose_sessions_changed(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20, duration=100.0)
    events_make(org, feature, people, days=BASELINE, per_day=20, event_type="export", duration=100.0)
    events_make(org, feature, people, days=[DAY], per_day=20, event_type="export", duration=400.0)
    anomaly = anomaly_for(org, feature, metric="avg_session_duration", value=250.0, expected=100.0)
    explanation = explain.anomaly_explanation(org, anomaly)
    assert best(explanation) == ("event_type", "export")
    assert explanation["segment"]["share_of_change"] == pytest.approx(1.0)
    assert explanation["segment"]["usual_share"] == pytest.approx(0.5)  # its weight on the day


def test_daily_active_users_spike_of_new_users_of_one_event_type(org, feature, people):
    events_make(org, feature, people[:6], days=[DAY, *BASELINE], per_day=6)
    events_make(org, feature, people[6:], days=[DAY], per_day=6, event_type="export")
    anomaly = anomaly_for(org, feature, metric="daily_active_users", value=12, expected=6)
    assert best(explain.anomaly_explanation(org, anomaly)) == ("event_type", "export")


def test_reads_only_the_day_and_its_baseline_days_of_its_own_organisation(org, other_org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20)
    events_make(org, feature, people, days=[DAY], per_day=40, event_type="export")
    # Elsewhere: other days of the same feature, and the other organisation on the same day.
    events_make(org, feature, people, days=[DAY - timedelta(days=1), DAY - timedelta(days=3)], per_day=90,
                event_type="import")  # fmt: skip
    other_feature = features_make(other_org, 1, prefix="other")[0]
    events_make(other_org, other_feature, end_users_make(other_org), days=[DAY], per_day=90, event_type="import")
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=60, expected=20))
    values = {s["value"] for s in explanation["segments"]}
    assert "import" not in values
    assert best(explanation) == ("event_type", "export")


def test_bounded_reads(org, feature, people, django_assert_max_num_queries):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20)
    events_make(org, feature, people, days=[DAY], per_day=60, event_type="export")
    anomaly = anomaly_for(org, feature, value=80, expected=20)
    # Samples of the day and of the baseline days for property keys, one grouped read per
    # dimension (event type, age, gender, account, user.plan, event.source), one to name a
    # kept account.
    with django_assert_max_num_queries(9):
        explanation = explain.anomaly_explanation(org, anomaly)
    assert len(explanation["dimensions"]) <= 6


def test_no_events_behind_the_rollups_gives_no_segment(org, feature):
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=80, expected=20))
    assert explanation["segment"] is None and explanation["concentrated"] is False
    assert explain.explanation_phrase(explanation) is None


def test_anomalies_explain_stores_once_and_only_time_series_ones(org, feature, people):
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=20)
    events_make(org, feature, people, days=[DAY], per_day=60, event_type="export")
    anomaly = anomaly_for(org, feature, value=80, expected=20)
    ranking = Anomaly.objects.create(
        organization=org, feature=feature, date=DAY, detector="outlier_features", metric="vector",
        value=3.0, expected=2.0, score=3.0,
    )  # fmt: skip
    assert explain.anomalies_explain(org, start=DAY, end=DAY) == 1
    anomaly.refresh_from_db()
    ranking.refresh_from_db()
    assert anomaly.explanation["segment"]["value"] == "export" and ranking.explanation is None
    assert explain.anomalies_explain(org, start=DAY, end=DAY) == 0  # already explained


def test_a_quiet_feature_is_compared_with_all_days_of_its_six_weeks(org, feature, people):
    # About one event every other day: the same weekdays hold next to nothing, so the usual
    # mix comes from every day of the six weeks, and the burst's own event type explains it
    # (not a value every event of the day shares, such as having no account).
    quiet_days = [DAY - timedelta(days=n) for n in range(1, 43, 2)]
    events_make(org, feature, people, days=quiet_days, per_day=1)
    events_make(org, feature, people, days=[DAY], per_day=30, event_type="share")
    anomaly = anomaly_for(org, feature, value=30, expected=0.3, score=20.0)
    explanation = explain.anomaly_explanation(org, anomaly)
    assert len(explanation["baseline_days"]) == 42
    assert best(explanation) == ("event_type", "share")
    assert explanation["segment"]["usual_share"] == 0.0 and explanation["concentrated"]


def test_a_dominant_segment_that_vanishes_explains_the_drop(org, feature, people):
    # Four fifths of the usage is iOS (a key only those events carry); it stops. The key
    # is found though no event of the day has it, and the value wins over its "(none)" twin.
    events_make(org, feature, people, days=[DAY, *BASELINE], per_day=8, metadata={"source": "web"})
    events_make(org, feature, people, days=BASELINE, per_day=32, metadata={"platform": "ios"})
    explanation = explain.anomaly_explanation(org, anomaly_for(org, feature, value=8, expected=40, score=-9))
    assert best(explanation) == ("event.platform", "ios")
    assert explanation["segment"]["share_of_change"] == pytest.approx(1.0)
    assert explanation["segment"]["usual_share"] == pytest.approx(0.8)
    assert explanation["concentrated"] is True


def test_a_share_past_the_whole_change_is_said_in_words():
    """A segment that rose while the rest fell carries more than the whole change: the line
    says so rather than "102 % of the change"."""
    over = {
        "segment": {"label": "event type “share”", "share_of_change": 1.02, "usual_share": 0.2},
        "concentrated": True,
    }
    assert explain.explanation_phrase(over) == (
        "mostly event type “share” (102 % of the change, more than all of it as the rest moved the other way; "
        "usually 20 % of usage)"
    )
