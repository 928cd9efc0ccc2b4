"""`manage.py seed_movielens` end to end against the database (small limits: fast)."""

import hashlib
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from telemetry.models import DirtyDay, EndUser, EventUuid, Feature, UsageEvent
from telemetry.seed import sources
from telemetry.seed.events import BURST_DAYS_AGO, BURST_EVENT_TYPE, BURST_EVENTS
from tenants.models import Organization, Role, User

pytestmark = pytest.mark.django_db


def seed(*args):
    out, err = StringIO(), StringIO()
    call_command("seed_movielens", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_seeding_twice_creates_nothing_twice():
    first = seed("--source", "synthetic", "--orgs", "2", "--limit", "400")
    counts = (
        Organization.objects.count(),
        User.objects.count(),
        Feature.objects.count(),
        EndUser.objects.count(),
        UsageEvent.objects.count(),
    )
    assert counts[-1] == 400
    assert "Seeded 400 new events (0 already there)" in first

    # (--no-anomalies: with --recent-days the seeder would also add its demo bursts.)
    again = seed("--source", "synthetic", "--orgs", "2", "--limit", "400", "--recent-days", "10", "--no-anomalies")
    assert "Seeded 0 new events (400 already there)" in again
    assert (
        Organization.objects.count(),
        User.objects.count(),
        Feature.objects.count(),
        EndUser.objects.count(),
        UsageEvent.objects.count(),
    ) == counts

    # A larger limit adds only the events not stored yet.
    more = seed("--source", "synthetic", "--orgs", "2", "--limit", "500")
    assert "Seeded 100 new events (400 already there)" in more
    assert UsageEvent.objects.count() == 500


def test_orgs_features_users_and_event_columns():
    out = seed("--source", "synthetic", "--orgs", "3", "--limit", "600")
    orgs = {o.name: o for o in Organization.objects.all()}
    assert set(orgs) == {"Org-1", "Org-2", "Org-3"}
    for n in (1, 2, 3):
        admin = User.objects.get(email=f"admin@org-{n}.demo")
        assert admin.organization == orgs[f"Org-{n}"] and admin.role == Role.ADMIN
        assert admin.check_password("movielens-demo")
        assert f"Org-{n}: admin@org-{n}.demo / movielens-demo" in out

    # Every end user sits in the organisation its id hashes to, and only there.
    for end_user in EndUser.objects.select_related("organization"):
        user_id = int(end_user.external_id.removeprefix("user_"))
        expected = int(hashlib.sha256(str(user_id).encode()).hexdigest(), 16) % 3 + 1
        assert end_user.organization.name == f"Org-{expected}"
        assert end_user.age is not None and end_user.gender in ("M", "F")
        assert end_user.first_seen <= end_user.last_seen
    assert EndUser.objects.values("external_id").distinct().count() == EndUser.objects.count()

    event = UsageEvent.objects.select_related("feature", "end_user").first()
    assert event.event_type == "interaction"
    assert event.feature.key == f"feature_{event.metadata['raw_feature']}"
    assert event.feature.organization_id == event.organization_id == event.end_user.organization_id
    assert event.metadata["source"] == "synthetic"
    rating = event.metadata["rating"]
    if not event.metadata.get("injected"):
        assert max(1, rating * 60 - 15) <= event.session_duration <= rating * 60 + 30
    assert datetime(1997, 9, 19, tzinfo=UTC) < event.timestamp < datetime(1998, 4, 23, tzinfo=UTC)
    assert event.session_id.startswith(f"ml-{event.end_user.external_id.removeprefix('user_')}-")
    # Seeded past days are marked for the rollup.
    assert DirtyDay.objects.filter(organization_id=event.organization_id, date=event.timestamp.date()).exists()


def test_anomalies_are_two_percent_and_can_be_turned_off():
    seed("--source", "synthetic", "--orgs", "1", "--limit", "1000")
    injected = UsageEvent.objects.filter(metadata__injected=True)
    assert injected.count() == 20
    for event in injected:
        assert event.session_duration >= 3 * max(1, event.metadata["rating"] * 60 - 15) - 1e-6

    UsageEvent.objects.all().delete()
    # The same uuids again: on PostgreSQL the dedupe table remembers them beyond the events.
    EventUuid.objects.all().delete()
    seed("--source", "synthetic", "--orgs", "1", "--limit", "1000", "--no-anomalies")
    assert UsageEvent.objects.count() == 1000
    assert not UsageEvent.objects.filter(metadata__injected=True).exists()
    assert not UsageEvent.objects.filter(metadata__has_key="injected").exists()


def test_recent_days_puts_the_events_in_the_last_n_days():
    before = datetime.now(UTC)
    seed("--source", "synthetic", "--orgs", "2", "--limit", "500", "--recent-days", "14")
    after = datetime.now(UTC)
    stamps = UsageEvent.objects.values_list("timestamp", flat=True)
    assert min(stamps) >= before - timedelta(days=14)
    assert max(stamps) <= after
    assert max(stamps) >= before - timedelta(hours=6)  # the newest events are "live"
    assert len({s.date() for s in stamps}) >= 10  # spread over the period, not piled on one day


def test_local_file_source(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    rows = [(196, 242, 3, 881250949), (186, 302, 3, 891717742), (22, 377, 1, 878887116), (196, 302, 5, 881251000)]
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    (folder / "u.item").write_text("242|Kolya (1996)|24-Jan-1997||http://x|0\n")
    out = seed("--source", str(folder / "u.data"), "--orgs", "1", "--limit", "0", "--no-anomalies")
    assert f"Source: {folder / 'u.data'} — 4 ratings." in out
    assert UsageEvent.objects.count() == 4
    assert Feature.objects.get(key="feature_242").name == "Kolya (1996)"
    assert Feature.objects.get(key="feature_302").name == "feature_302"
    assert set(EndUser.objects.values_list("external_id", flat=True)) == {"user_196", "user_186", "user_22"}
    assert set(UsageEvent.objects.values_list("metadata__source", flat=True)) == {"file"}


def test_offline_default_source_says_so_and_seeds_synthetic(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.MOVIELENS_PATH = ""
    monkeypatch.setattr(sources, "LOCAL_DEFAULT_DIR", tmp_path / "absent")

    def not_installed():
        raise sources.SourceUnavailable("the recbole package is not installed")

    monkeypatch.setattr(sources, "recbole_load", not_installed)
    out = seed("--orgs", "1", "--limit", "50")
    lines = [line for line in out.splitlines() if "Hugging Face hub is" in line]
    assert len(lines) == 1 and "synthetic MovieLens-shaped generator" in lines[0]
    assert UsageEvent.objects.count() == 50


def test_bad_source_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="unavailable"):
        seed("--source", str(tmp_path / "missing.csv"))
    assert not UsageEvent.objects.exists()


def test_recent_days_adds_demo_bursts_once():
    out = seed("--source", "synthetic", "--orgs", "2", "--limit", "600", "--recent-days", "20")
    bursts = UsageEvent.objects.filter(metadata__burst=True)
    assert bursts.count() == 2 * len(BURST_DAYS_AGO) * BURST_EVENTS
    assert f"Seeded {600 + bursts.count()} new events" in out
    assert set(bursts.values_list("event_type", flat=True)) == {BURST_EVENT_TYPE}
    today = datetime.now(UTC).date()
    assert {t.date() for t in bursts.values_list("timestamp", flat=True)} == {
        today - timedelta(days=d) for d in BURST_DAYS_AGO
    }
    # One feature per burst, of the organisation's own users.
    for org in Organization.objects.all():
        mine = bursts.filter(organization=org)
        assert mine.values("feature").distinct().count() == len(BURST_DAYS_AGO)
        assert not mine.exclude(end_user__organization=org).exists()
    again = seed("--source", "synthetic", "--orgs", "2", "--limit", "600", "--recent-days", "30")
    assert "Seeded 0 new events" in again
