from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from insights.models import Anomaly, Insight
from insights.tests.helpers import features_make, rollups_make, yesterday


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_detect_anomalies_command(org):
    features = features_make(org, 4)
    rollups_make(org, features, end=yesterday(), days=70, spikes={(1, yesterday()): 5.0})
    output = run("detect_anomalies", "--org", org.slug, "--days", "30", "--alert")
    assert f"{org.slug}:" in output and "alerted" in output
    # Anomalies and the unusual-features ranking's rows are counted apart, as the pages count them.
    ranked = Anomaly.objects.filter(organization=org, detector="outlier_features").count()
    found = Anomaly.objects.filter(organization=org).count() - ranked
    assert output.startswith(f"{org.slug}: {found} new anomal")
    assert (f"(and {ranked} rows of the unusual-features ranking)" in output) == bool(ranked)
    assert Anomaly.objects.filter(organization=org, feature=features[1], date=yesterday()).exists()
    assert len(mail.outbox) == 1
    with pytest.raises(CommandError):
        run("detect_anomalies", "--org", "nope")
    with pytest.raises(CommandError):
        run("detect_anomalies", "--end", "yesterday")


def test_detect_anomalies_refuses_a_partial_day(org):
    """Today so far, judged against whole days, was a drop of every feature."""
    features = features_make(org, 4)
    today = yesterday() + timedelta(days=1)
    rollups_make(org, features, end=today, days=70, spikes={(i, today): 0.2 for i in range(4)})
    for end in (today, today + timedelta(days=3)):
        with pytest.raises(CommandError, match="complete day"):
            run("detect_anomalies", "--org", org.slug, "--end", end.isoformat(), "--alert")
    assert not Anomaly.objects.filter(organization=org, date__gte=today).exists() and not mail.outbox


def test_refresh_and_export_commands(org, other_org):
    output = run("refresh_insights")
    assert "heuristic" in output and Insight.objects.count() == 2
    assert f"{org.slug}: 0 webhook(s)" in run("export_daily", "--org", str(org.id), "--day", "2026-01-01")
