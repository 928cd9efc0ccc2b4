"""The demo as `make demo` builds it (seed_movielens --recent-days, rollup --all-days,
detect_anomalies --days 30), on the synthetic MovieLens-shaped source the seeder falls back
to offline: the detector finds the seeder's bursts and says why."""

from io import StringIO

import pytest
from django.core.management import call_command

from insights.models import Anomaly
from telemetry.models import UsageEvent
from telemetry.seed.events import BURST_EVENT_TYPE
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def run(*args):
    call_command(*args, stdout=StringIO(), stderr=StringIO())


def test_demo_shows_real_time_series_anomalies_with_their_explanation():
    run("seed_movielens", "--source", "synthetic", "--orgs", "2", "--limit", "6000", "--recent-days", "45")
    run("rollup", "--all-days", "--no-after-rollup")
    run("detect_anomalies", "--days", "30")
    for org in Organization.objects.all():
        found = Anomaly.objects.filter(organization=org, detector="timeseries")
        explained = [a for a in found if a.explanation and a.explanation["segment"]]
        assert explained, f"{org.slug}: no explained time-series anomaly"
        bursts = set(
            UsageEvent.objects.filter(organization=org, metadata__burst=True).values_list(
                "feature_id", "timestamp__date"
            )
        )
        for anomaly in explained:
            if (anomaly.feature_id, anomaly.date) in bursts and anomaly.metric == "event_count":
                segment = anomaly.explanation["segment"]
                assert (segment["dimension"], segment["value"]) == ("event_type", BURST_EVENT_TYPE)
                assert anomaly.explanation["concentrated"] and segment["share_of_change"] > 0.8
        burst_findings = {(a.feature_id, a.date) for a in found} & bursts
        assert burst_findings == bursts  # every burst is found
        # And little else: a few thousand rarely used features stay quiet.
        assert len({(a.feature_id, a.date) for a in found} - bursts) <= 2
