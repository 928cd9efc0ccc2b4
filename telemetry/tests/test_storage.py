"""The storage functions the endpoints, the consumer and the seeder share."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from telemetry.models import DirtyDay, EndUser, Feature, UsageEvent
from telemetry.services import storage

pytestmark = pytest.mark.django_db


def _ts(days_ago=0):
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)


def test_features_resolve_by_id_key_and_name_in_one_query(org, other_org, django_assert_num_queries):
    search = Feature.objects.create(organization=org, key="search", name="Search Page")
    export = Feature.objects.create(organization=org, key="export", name="Export")
    foreign = Feature.objects.create(organization=other_org, key="search", name="Search Page")
    with django_assert_num_queries(1):
        got = storage.features_resolve(org, [search.pk, "export", "Search Page", foreign.pk, "nope"], create=False)
    assert got == {search.pk: search.pk, "export": export.pk, "Search Page": search.pk}


def test_features_resolve_creates_missing_with_slug_keys(org):
    got = storage.features_resolve(org, ["Dark Mode", "dark-mode", "検索"], create=True)
    dark = Feature.objects.get(organization=org, key="dark-mode")
    assert dark.name == "Dark Mode"
    assert got["Dark Mode"] == got["dark-mode"] == dark.pk
    assert Feature.objects.get(pk=got["検索"]).key == "検索"
    again = storage.features_resolve(org, ["Dark Mode", "検索"], create=True)
    assert again == {"Dark Mode": dark.pk, "検索": got["検索"]}
    assert Feature.objects.filter(organization=org).count() == 2


def test_end_users_upsert_inserts_updates_and_never_erases(org, other_org):
    t0, t1 = _ts(2), _ts(1)
    ids = storage.end_users_upsert(
        org,
        [
            {
                "external_id": "u1",
                "email": "u1@x.example",
                "age": 30,
                "gender": "F",
                "properties": {"a": 1},
                "last_seen": t1,
            },
            {"external_id": "u1", "last_seen": t0},
            {"external_id": "u2", "last_seen": t0},
        ],
    )
    assert set(ids) == {"u1", "u2"}
    u1 = EndUser.objects.get(pk=ids["u1"])
    assert (u1.email, u1.age, u1.gender, u1.properties) == ("u1@x.example", 30, "F", {"a": 1})
    assert (u1.first_seen, u1.last_seen) == (t0, t1)
    t2 = _ts(0)
    again = storage.end_users_upsert(org, [{"external_id": "u1", "properties": {"b": 2}, "last_seen": t2}])
    assert again == {"u1": u1.pk}
    u1.refresh_from_db()
    assert u1.email == "u1@x.example" and u1.age == 30 and u1.properties == {"a": 1, "b": 2}
    assert u1.first_seen == t0 and u1.last_seen == t2
    other = storage.end_users_upsert(other_org, [{"external_id": "u1"}])
    assert other["u1"] != u1.pk


def test_events_insert_skips_duplicates_in_rows_and_across_calls(org):
    feature = Feature.objects.create(organization=org, key="f", name="F")
    user = storage.end_users_upsert(org, [{"external_id": "u"}])["u"]
    dup = uuid.uuid4()
    rows = [
        {"uuid": dup, "organization_id": org.pk, "feature_id": feature.pk, "end_user_id": user, "timestamp": _ts()},
        {"uuid": str(dup), "organization_id": org.pk, "feature_id": feature.pk, "timestamp": _ts()},
        {
            "organization_id": org.pk,
            "feature_id": feature.pk,
            "timestamp": _ts(),
            "metadata": {"ü": "✓", "n": [1, 2]},
            "session_duration": 1.5,
        },
    ]
    assert storage.events_insert(rows=rows) == 2
    assert storage.events_insert(rows=rows[:2]) == 0
    assert UsageEvent.objects.filter(organization=org).count() == 2
    event = UsageEvent.objects.get(organization=org, session_duration=1.5)
    assert event.metadata == {"ü": "✓", "n": [1, 2]} and event.event_type == "interaction"


def test_days_mark_dirty_only_past_days(org):
    today = datetime.now(UTC).date()
    assert storage.days_mark_dirty(org.pk, [today, today - timedelta(days=3), today - timedelta(days=3)]) == 1
    assert storage.days_mark_dirty(org.pk, [today - timedelta(days=3)]) == 1
    assert list(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == [today - timedelta(days=3)]


def test_known_unchanged_end_users_cost_one_read_and_no_write(org, settings, django_assert_num_queries):
    settings.INGEST_END_USER_CACHE_SECONDS = 0  # as in a process that has not seen them yet
    now = _ts()
    rows = [{"external_id": f"u{i}", "last_seen": now} for i in range(300)]
    first = storage.end_users_upsert(org, rows)
    later = [{"external_id": f"u{i}", "last_seen": now + timedelta(seconds=30)} for i in range(300)]
    with django_assert_num_queries(1):  # last_seen moves in 1-minute steps: nothing to write
        assert storage.end_users_upsert(org, later) == first
    moved = [{"external_id": "u1", "last_seen": now + timedelta(minutes=2)}, {"external_id": "u2", "age": 40}]
    with django_assert_num_queries(2):
        storage.end_users_upsert(org, moved + later[3:])
    assert EndUser.objects.get(pk=first["u1"]).last_seen == now + timedelta(minutes=2)
    assert EndUser.objects.get(pk=first["u2"]).age == 40
    assert EndUser.objects.get(pk=first["u3"]).last_seen == now


def test_end_users_seen_recently_by_this_process_cost_no_query(
    org, django_assert_num_queries, django_capture_on_commit_callbacks
):
    now = _ts()
    with django_capture_on_commit_callbacks(execute=True):  # the cache learns what was committed
        first = storage.end_users_upsert(org, [{"external_id": f"u{i}", "last_seen": now} for i in range(300)])
    later = [{"external_id": f"u{i}", "last_seen": now + timedelta(seconds=30)} for i in range(300)]
    with django_assert_num_queries(0):
        assert storage.end_users_upsert(org, later) == first
    # A row that moves last_seen on, or carries an attribute, still goes to the database.
    moved = [{"external_id": "u1", "last_seen": now + timedelta(minutes=2)}, {"external_id": "u2", "age": 40}]
    with django_assert_num_queries(2):
        ids = storage.end_users_upsert(org, moved + later[3:])
    assert ids == {ext: pk for ext, pk in first.items() if ext != "u0"}
    assert EndUser.objects.get(pk=first["u1"]).last_seen == now + timedelta(minutes=2)
    assert EndUser.objects.get(pk=first["u2"]).age == 40
    assert EndUser.objects.get(pk=first["u3"]).last_seen == now


def test_a_stale_cached_span_never_loses_a_write(org, django_capture_on_commit_callbacks):
    """Another process moved the stored span; this process's older entry can only cause an
    extra write, and the stored span keeps the widest times."""
    now = _ts()
    with django_capture_on_commit_callbacks(execute=True):
        [user_id] = storage.end_users_upsert(org, [{"external_id": "u1", "last_seen": now}]).values()
    EndUser.objects.filter(pk=user_id).update(  # as another process would
        first_seen=now - timedelta(days=1), last_seen=now + timedelta(minutes=10)
    )
    storage.end_users_upsert(org, [{"external_id": "u1", "first_seen": now - timedelta(hours=1)}])
    storage.end_users_upsert(org, [{"external_id": "u1", "last_seen": now + timedelta(minutes=5)}])
    user = EndUser.objects.get(pk=user_id)
    assert (user.first_seen, user.last_seen) == (now - timedelta(days=1), now + timedelta(minutes=10))


@pytest.mark.parametrize("conflict", [False, True], ids=["copy", "staged"])
def test_events_insert_keeps_every_character_copy_escapes(org, conflict):
    """PostgreSQL writes events as a COPY text payload: tabs, newlines, backslashes and
    non-ASCII text must come back exactly, on the direct and on the conflict-skipping path."""
    feature = Feature.objects.create(organization=org, key="k", name="K")
    tricky = 'tab\there, line\nbreak, cr\r, back\\slash, "quoted", \\N, 検索 ✓'
    row = {
        "uuid": str(uuid.uuid4()),
        "organization_id": org.pk,
        "feature_id": feature.pk,
        "event_type": "type\\with\tescapes",
        "session_id": tricky[:128],
        "session_duration": 1e-05,
        "metadata": {"text": tricky, "nested": {"list": [1, "\\", None]}},
        "timestamp": _ts(1),
    }
    rows = [row, {**row, "uuid": str(uuid.uuid4()), "session_duration": None, "metadata": None}]
    if conflict:
        storage.events_insert(rows=[dict(rows[0])])
    assert storage.events_insert(rows=[dict(r) for r in rows]) == (1 if conflict else 2)
    stored = UsageEvent.objects.get(uuid=row["uuid"])
    assert (stored.event_type, stored.session_id) == (row["event_type"], row["session_id"])
    assert stored.session_duration == 1e-05 and stored.metadata == row["metadata"]
    assert stored.timestamp == row["timestamp"] and stored.end_user_id is None
    other = UsageEvent.objects.get(uuid=rows[1]["uuid"])
    assert other.session_duration is None and other.metadata == {}


def test_end_users_of_a_rolled_back_transaction_are_not_cached(org, django_assert_num_queries):
    """A rolled-back insert must not leave its ids behind: SQLite would even give the same
    id to the next new end user, and events would land on the wrong person."""
    now = _ts()
    with pytest.raises(RuntimeError), transaction.atomic():
        storage.end_users_upsert(org, [{"external_id": "ghost", "last_seen": now}])
        raise RuntimeError("the events insert failed")
    assert not EndUser.objects.filter(external_id="ghost").exists()
    with django_assert_num_queries(2):  # looked up and inserted again, not answered from memory
        [user_id] = storage.end_users_upsert(org, [{"external_id": "ghost", "last_seen": now}]).values()
    assert EndUser.objects.filter(pk=user_id, external_id="ghost").exists()


def test_copy_payload_is_exact_text_format():
    """The PostgreSQL write path's hand-built COPY text, checked byte for byte (the suite's
    default database is SQLite, which never runs it)."""
    aware = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    naive = datetime(2026, 1, 2, 3, 4, 5)
    event_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    rows = [
        {
            "uuid": event_id,
            "organization_id": 1,
            "feature_id": 2,
            "end_user_id": 3,
            "event_type": "a\\b\tc",
            "session_id": "line\nbreak\r",
            "session_duration": 1.5,
            "metadata": b'{"k":"v\\\\"}',
            "timestamp": aware,
            "received_at": naive,
        },
        {"uuid": "u-2", "organization_id": 1, "feature_id": 2, "session_id": 42, "timestamp": aware},
    ]
    payload, keys = storage.events._copy_payloads(rows, now=aware)
    assert payload.decode().split("\n")[:-1] == [
        "12345678-1234-5678-1234-567812345678\t1\t2\t3\ta\\\\b\\tc\tline\\nbreak\\r\t1.5\t"
        '{"k":"v\\\\\\\\"}\t2026-01-02T03:04:05.600000+00:00\t2026-01-02T03:04:05',
        "u-2\t1\t2\t\\N\tinteraction\t42\t\\N\t{}\t2026-01-02T03:04:05.600000+00:00\t2026-01-02T03:04:05.600000+00:00",
    ]
    # The dedupe table's rows (PostgreSQL): organisation, uuid, received_at.
    assert keys.decode().split("\n")[:-1] == [
        "1\t12345678-1234-5678-1234-567812345678\t2026-01-02T03:04:05",
        "1\tu-2\t2026-01-02T03:04:05.600000+00:00",
    ]


def test_an_account_updated_meanwhile_keeps_both_calls_properties_and_its_name(org, monkeypatch):
    """Two group calls for one account at once: the second writes between the first's read
    and its update. The update merges into what is stored then, not into what it read."""
    from telemetry.models import Account
    from telemetry.services.storage import accounts

    storage.accounts_upsert(org, [{"external_id": "acme", "properties": {"tier": 1}}])
    changes = accounts._changes

    def another_call_meanwhile(stored, row):
        monkeypatch.setattr(accounts, "_changes", changes)
        storage.accounts_upsert(org, [{"external_id": "acme", "name": "Acme", "properties": {"seats": 5}}])
        return changes(stored, row)

    monkeypatch.setattr(accounts, "_changes", another_call_meanwhile)
    storage.accounts_upsert(org, [{"external_id": "acme", "properties": {"plan": "pro"}}])
    account = Account.objects.get(organization=org, external_id="acme")
    assert (account.name, account.properties) == ("Acme", {"tier": 1, "seats": 5, "plan": "pro"})
