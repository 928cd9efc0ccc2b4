"""`manage.py import_events`: CSV, JSON Lines and Parquet exports through the ingestion path
(validation, end users, dedupe by uuid, late-data marks), with item errors by line."""

import importlib.util
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from telemetry.models import DirtyDay, EndUser, UsageEvent
from telemetry.services import importing
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db

PAST = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)


def _import(path, org, key, *extra):
    call_command("import_events", str(path), "--org", org.slug, "--key", key, "--no-progress", *extra)


def _events(n, start=0):
    return [
        {
            "uuid": str(uuid.UUID(int=i + 1)),
            "feature": f"feature_{i % 3}",
            "user_id": f"user_{i % 4}",
            "timestamp": (PAST + timedelta(minutes=i)).isoformat(),
            "session_duration": 30.5,
            "age": 30 + i % 4,
            "metadata": {"plan": "pro"},
        }
        for i in range(start, start + n)
    ]


def test_jsonl_import_stores_events_end_users_and_marks_past_days(tmp_path, org, raw_api_key, capsys):
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in _events(2500)) + "\n")
    _import(path, org, raw_api_key)
    assert "Read 2,500 events: 2,500 stored, 0 already there (same uuid), 0 refused." in capsys.readouterr().out
    assert UsageEvent.objects.filter(organization=org).count() == 2500
    assert EndUser.objects.filter(organization=org).count() == 4
    assert EndUser.objects.get(organization=org, external_id="user_1").age == 31
    assert DirtyDay.objects.filter(organization=org, date=PAST.date()).exists()
    # A second run of the same file stores nothing twice.
    _import(path, org, raw_api_key)
    assert "0 stored, 2,500 already there" in capsys.readouterr().out
    assert UsageEvent.objects.filter(organization=org).count() == 2500


def test_csv_import_decodes_numbers_metadata_columns_and_reports_bad_rows_by_line(tmp_path, org, raw_api_key, capsys):
    path = tmp_path / "export.csv"
    path.write_text(
        "uuid,feature,user_id,timestamp,session_duration,gender,metadata.plan,metadata\n"
        f"{uuid.uuid4()},search,u-1,{PAST.isoformat()},12.5,F,pro,\n"
        f'{uuid.uuid4()},search,u-2,{int(PAST.timestamp())},7,M,,"{{""k"": 1}}"\n'
        f"{uuid.uuid4()},search,u-3,yesterday,3,F,free,\n"
        f"{uuid.uuid4()},,u-4,{PAST.isoformat()},-1,F,free,\n"
    )
    _import(path, org, raw_api_key)
    out = capsys.readouterr()
    assert "Read 4 events: 2 stored, 0 already there (same uuid), 2 refused." in out.out
    assert "line 4: timestamp:" in out.err and "line 5: " in out.err
    rows = {e.end_user.external_id: e for e in UsageEvent.objects.select_related("end_user")}
    assert rows["u-1"].session_duration == 12.5 and rows["u-1"].metadata == {"plan": "pro"}
    assert rows["u-2"].timestamp == PAST and rows["u-2"].metadata == {"k": 1}
    assert EndUser.objects.get(external_id="u-1").gender == "F"


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_rows_without_uuid_are_stored_once_however_often_the_file_is_imported(
    tmp_path, org, raw_api_key, capsys, suffix
):
    """QA pass 3, F5: an export without a uuid column was stored again by every run (a retry
    after "Run the import again" doubled every figure of those days)."""
    stamp = PAST.isoformat()
    path = tmp_path / f"export.{suffix}"
    if suffix == "csv":
        path.write_text(
            f"feature,user_id,timestamp,session_duration\nimp_a,iu1,{stamp},30\nimp_a,iu1,{stamp},30\nimp_b,iu2,{stamp},5\n"
        )
    else:
        rows = [{"feature": "imp_a", "user_id": "iu1", "timestamp": stamp, "session_duration": 30}] * 2
        rows.append({"feature": "imp_b", "user_id": "iu2", "timestamp": stamp, "uuid": ""})
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    _import(path, org, raw_api_key)
    out = capsys.readouterr().out
    assert "Read 3 events: 3 stored" in out and "3 had no uuid" in out
    # The two identical rows are two events; a second run stores none of the three again.
    assert UsageEvent.objects.filter(organization=org, feature__key="imp_a").count() == 2
    _import(path, org, raw_api_key)
    assert "0 stored, 3 already there" in capsys.readouterr().out
    assert UsageEvent.objects.filter(organization=org).count() == 3


def test_a_jsonl_line_that_is_not_json_is_reported_and_the_rest_imported(tmp_path, org, raw_api_key, capsys):
    path = tmp_path / "export.ndjson"
    good = _events(2)
    path.write_text(json.dumps(good[0]) + "\n{not json\n\n" + json.dumps(good[1]) + "\n")
    _import(path, org, raw_api_key)
    out = capsys.readouterr()
    assert "Read 3 events: 2 stored" in out.out and "1 refused" in out.out
    assert "line 2: body: Not a JSON object" in out.err


def test_a_jsonl_line_of_json_that_is_not_an_object_is_refused_by_line(tmp_path, org, raw_api_key, capsys):
    """`[1, 2]`, `42`, `"x"`, `null`: JSON, not an event; each is refused by line as the
    batch endpoint refuses such an item, the rest imported (the timestamp check once raised
    on them and stopped the import)."""
    path = tmp_path / "export.jsonl"
    good = _events(2)
    path.write_text("\n".join([json.dumps(good[0]), "[1, 2]", "42", '"x"', "null", json.dumps(good[1])]) + "\n")
    _import(path, org, raw_api_key)
    captured = capsys.readouterr()
    assert "Read 6 events: 2 stored, 0 already there (same uuid), 4 refused." in captured.out
    assert [line.split(":")[0] for line in captured.err.splitlines()] == ["line 2", "line 3", "line 4", "line 5"]


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="Parquet needs pyarrow")
def test_parquet_import(tmp_path, org, raw_api_key, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = _events(1200)
    for e in events:
        e["metadata"] = json.dumps(e["metadata"])  # a Parquet export keeps JSON as text
    table = pa.Table.from_pylist([{k: v for k, v in e.items() if k != "metadata"} for e in events])
    pq.write_table(table, tmp_path / "export.parquet")
    _import(tmp_path / "export.parquet", org, raw_api_key)
    assert "Read 1,200 events: 1,200 stored" in capsys.readouterr().out
    assert UsageEvent.objects.filter(organization=org).count() == 1200


def test_parquet_without_pyarrow_says_so(tmp_path, org, raw_api_key, monkeypatch):
    path = tmp_path / "export.parquet"
    path.write_bytes(b"PAR1")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importing.importlib.util, "find_spec", lambda name: None if name == "pyarrow" else real_find_spec(name)
    )
    with pytest.raises(CommandError, match="Reading Parquet needs pyarrow, which is not installed"):
        _import(path, org, raw_api_key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "upk_not-a-key"}, "not an active ingestion key"),
        ({"org": "no-such-org"}, "Unknown organisation: no-such-org"),
        ({"file": "missing.csv"}, "No such file"),
        ({"file": "export.txt"}, "Cannot tell the format of export.txt"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, org, raw_api_key, change, message):
    (tmp_path / "export.txt").write_text("x")
    args = {"key": raw_api_key, "org": org.slug, "file": "export.txt"} | change
    with pytest.raises(CommandError, match=message):
        call_command("import_events", str(tmp_path / args["file"]), "--org", args["org"], "--key", args["key"])


def test_a_key_of_another_organisation_is_refused(tmp_path, org, other_org):
    _, other_key = tenant_services.api_key_create(org=other_org, name="theirs")
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    with pytest.raises(CommandError, match="not an active ingestion key"):
        _import(path, org, other_key)
    assert not UsageEvent.objects.exists()


def test_a_file_of_only_bad_events_fails_the_command(tmp_path, org, raw_api_key):
    path = tmp_path / "export.jsonl"
    path.write_text('{"feature": ""}\n')
    with pytest.raises(CommandError, match="Every event was refused"):
        _import(path, org, raw_api_key)


# --- Unreadable files: a clear error naming the file, and what was imported before it -----------


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="Parquet needs pyarrow")
@pytest.mark.parametrize("damage", ["not parquet", "truncated"])
def test_an_unreadable_parquet_file_is_a_command_error_naming_it(tmp_path, org, raw_api_key, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "broken.parquet"
    if damage == "not parquet":
        path.write_bytes(b"feature,user_id\nsearch,u-1\n")
    else:
        pq.write_table(pa.Table.from_pylist(_events(50)), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CommandError, match=r"broken\.parquet is not a readable Parquet file: .*Nothing was imported"):
        _import(path, org, raw_api_key)
    assert not UsageEvent.objects.exists()


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="Parquet needs pyarrow")
def test_a_parquet_file_damaged_after_its_first_batch_says_what_was_stored(tmp_path, org, raw_api_key):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "damaged.parquet"
    # Incompressible text, one row group per 1,000 rows: the second group's pages are garbled.
    rows = [{**e, "metadata": None, "feature": f"f{e['uuid'][-12:]}"} for e in _events(2000)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000, compression="snappy")
    metadata = pq.ParquetFile(path).metadata.row_group(1)
    start = metadata.column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CommandError) as error:
        _import(path, org, raw_api_key)
    message = str(error.value)
    assert message.startswith("damaged.parquet is not a readable Parquet file"), message
    assert "the 1,000 events up to row 1,000 were imported: 1,000 stored" in message, message
    assert "nothing from row 1,001 on" in message, message
    assert UsageEvent.objects.filter(organization=org).count() == 1000


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_an_invalid_utf8_byte_late_in_a_csv_is_reported_at_its_file_offset(tmp_path, org, raw_api_key, bom):
    header = b"uuid,feature,user_id,timestamp\n"
    lines = [f"{e['uuid']},{e['feature']},{e['user_id']},{e['timestamp']}\n".encode() for e in _events(1500)]
    bad_line = 1200  # past the first batch of 1,000 and several decoder chunks into the file
    lines[bad_line - 1] = lines[bad_line - 1].replace(b"feature_", b"feat\xffure_")
    path = tmp_path / "export.csv"
    path.write_bytes(bom + header + b"".join(lines))
    offset = path.read_bytes().index(b"\xff")
    assert offset > 3 * 8192
    with pytest.raises(CommandError) as error:
        _import(path, org, raw_api_key)
    message = str(error.value)
    assert message.startswith(f"export.csv is not UTF-8 text: invalid start byte at byte {offset:,} of the file"), (
        message
    )
    # Line 1 is the header: the first 1,000 events are lines 2 to 1,001.
    assert "the 1,000 events up to line 1,001 were imported: 1,000 stored, 0 already there" in message, message
    assert UsageEvent.objects.filter(organization=org).count() == 1000


def test_an_invalid_utf8_byte_in_the_first_batch_imports_nothing(tmp_path, org, raw_api_key):
    path = tmp_path / "export.csv"
    path.write_bytes(b"feature,user_id\nse\xe9arch,u-1\n")
    with pytest.raises(CommandError, match=r"invalid continuation byte at byte 18 of the file\. Nothing was imported"):
        _import(path, org, raw_api_key)


# --- Queue mode -----------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_queued_import_prepares_its_months_partitions_and_says_what_is_known(
    tmp_path, org, raw_api_key, capsys, queue, settings
):
    """The consumer writes queued events later: their months get partitions at the import, so
    the rows land in them, not in the default partition. Whether a queued event was stored
    before is the consumer's to know: the summary does not claim "0 already there"."""
    from django.db import connection

    from telemetry.services import partitions
    from telemetry.services.stream import StreamConsumer

    old = partitions.months_add(partitions.month_start(datetime.now(UTC)), -9)
    start = datetime(old.year, old.month, 10, 12, tzinfo=UTC)
    events = [{**e, "timestamp": (start + timedelta(minutes=i)).isoformat()} for i, e in enumerate(_events(1500))]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    _import(path, org, raw_api_key)
    out = capsys.readouterr().out
    assert (
        "Read 1,500 events: 1,500 queued (the stream consumer stores them, and drops those already stored), "
        "0 repeated in the file (same uuid), 0 refused." in out
    ), out
    if connection.vendor == "postgresql":
        assert partitions.partition_name(old) in out and old in partitions.event_partitions()
    consumer = StreamConsumer(queue, consumer="import-test", block_ms=10)
    consumer.ensure_group()
    while consumer.run_once(block_ms=10):
        pass
    assert UsageEvent.objects.filter(organization=org).count() == 1500
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM telemetry_usageevent")
            assert [row[0] for row in cursor.fetchall()] == [partitions.partition_name(old)]
    # Again: queued again, and dropped by the consumer.
    _import(path, org, raw_api_key)
    assert "1,500 queued" in capsys.readouterr().out
    while consumer.run_once(block_ms=10):
        pass
    assert UsageEvent.objects.filter(organization=org).count() == 1500


def test_a_row_naming_another_organisation_is_refused_and_the_rest_imported(
    tmp_path, org, other_org, raw_api_key, capsys
):
    """An export of another installation (or tenant) carries its `org_id`: that row is
    refused by line, as any bad row, rather than stopping the import with a traceback."""
    events = _events(3)
    events[1]["org_id"] = other_org.pk
    events[2]["org_id"] = str(org.pk)
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    _import(path, org, raw_api_key)
    captured = capsys.readouterr()
    assert f"line 2: org_id: Names another organisation than {org.slug}." in captured.err
    assert "Read 3 events: 2 stored, 0 already there (same uuid), 1 refused." in captured.out
    assert UsageEvent.objects.filter(organization=org).count() == 2
    assert not UsageEvent.objects.filter(organization=other_org).exists()


def test_a_row_without_a_timestamp_is_refused_rather_than_stored_as_now(tmp_path, org, raw_api_key, capsys):
    """The batch endpoint stamps an event without a time with its arrival; an imported one
    stamped so would put history on today, so the import refuses it by line."""
    events = _events(3)
    del events[0]["timestamp"]
    events[2]["timestamp"] = ""
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    _import(path, org, raw_api_key)
    captured = capsys.readouterr()
    assert f"line 1: timestamp: {importing.TIMESTAMP_REQUIRED}" in captured.err
    assert f"line 3: timestamp: {importing.TIMESTAMP_REQUIRED}" in captured.err
    assert "Read 3 events: 1 stored, 0 already there (same uuid), 2 refused." in captured.out
    assert list(UsageEvent.objects.filter(organization=org).values_list("uuid", flat=True)) == [
        uuid.UUID(events[1]["uuid"])
    ]
