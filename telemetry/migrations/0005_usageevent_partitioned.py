"""PostgreSQL: the events table becomes partitioned by month of `timestamp` (declarative
partitioning), its rows moved in; SQLite is unchanged. Both get the uuid dedupe table
(`EventUuid`), which only PostgreSQL writes. See telemetry/services/partitions.py and
docs/scaling.md, "Partitions".

The table keeps its name, columns and indexes; what a partitioned table forces changes: the
primary key becomes (id, timestamp) and the uuid key (organization_id, uuid, timestamp).
The SQL is written out here, not imported, so that the migration keeps doing what it did
whatever the services become."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

TABLE = "telemetry_usageevent"
OLD = "telemetry_usageevent_unpartitioned"
INDEXES = {
    "event_org_ts_idx": '(organization_id, "timestamp")',
    "event_org_feature_ts_idx": '(organization_id, feature_id, "timestamp")',
    "event_org_user_ts_idx": '(organization_id, end_user_id, "timestamp")',
}

# One partition per UTC month that holds rows, plus the previous month (late events), the
# current one and the next three.
CREATE_PARTITIONS = f"""
DO $$
DECLARE
    month date;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', "timestamp" AT TIME ZONE 'UTC')::date FROM {OLD}
        UNION
        SELECT generate_series(
            date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month',
            date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
            interval '1 month')::date
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF {TABLE} FOR VALUES FROM (%L) TO (%L)',
            '{TABLE}_p' || to_char(month, 'YYYY_MM'),
            month::timestamp AT TIME ZONE 'UTC',
            (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;
"""


def _run(schema_editor, statements):
    with schema_editor.connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def partition_events(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    renames = [f"ALTER INDEX {name} RENAME TO {name}_old" for name in INDEXES]
    _run(
        schema_editor,
        [
            f"ALTER TABLE {TABLE} RENAME TO {OLD}",
            f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey",
            f"ALTER TABLE {OLD} RENAME CONSTRAINT event_org_uuid_uniq TO event_org_uuid_uniq_old",
            f"ALTER SEQUENCE IF EXISTS {TABLE}_id_seq RENAME TO {OLD}_id_seq",
            *renames,
            # Same columns, defaults and identity (a fresh sequence, moved past the old ids below).
            f'CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY) PARTITION BY RANGE ("timestamp")',
            CREATE_PARTITIONS,
            # Rows of a month without its partition (written by the ORM, or before the nightly
            # job made it) land here until that job moves them into their month's partition.
            f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT",
            f"INSERT INTO {TABLE} OVERRIDING SYSTEM VALUE SELECT * FROM {OLD}",
            f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), COALESCE((SELECT max(id) FROM {OLD}), 0) + 1, false)",
            # Indexes after the rows: one sorted build per partition instead of row by row.
            f'ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, "timestamp")',
            f'ALTER TABLE {TABLE} ADD CONSTRAINT event_org_uuid_ts_uniq UNIQUE (organization_id, uuid, "timestamp")',
            *(f"CREATE INDEX {name} ON {TABLE} {columns}" for name, columns in INDEXES.items()),
            # Recent uuids, so that retries of events already stored are still recognised.
            "INSERT INTO telemetry_eventuuid (organization_id, uuid, received_at) "
            f"SELECT DISTINCT ON (organization_id, uuid) organization_id, uuid, received_at FROM {OLD} "
            f"WHERE received_at >= now() - interval '{int(settings.EVENT_DEDUPE_DAYS)} days'",
            f"DROP TABLE {OLD}",
        ],
    )


def unpartition_events(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    partitioned = f"{TABLE}_partitioned"
    _run(
        schema_editor,
        [
            f"ALTER TABLE {TABLE} RENAME TO {partitioned}",
            f"ALTER TABLE {partitioned} RENAME CONSTRAINT {TABLE}_pkey TO {partitioned}_pkey",
            f"ALTER TABLE {partitioned} DROP CONSTRAINT event_org_uuid_ts_uniq",
            *(f"DROP INDEX {name}" for name in INDEXES),
            f"ALTER SEQUENCE IF EXISTS {TABLE}_id_seq RENAME TO {partitioned}_id_seq",
            f"CREATE TABLE {TABLE} (LIKE {partitioned} INCLUDING DEFAULTS INCLUDING IDENTITY)",
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)",
            f"ALTER TABLE {TABLE} ADD CONSTRAINT event_org_uuid_uniq UNIQUE (organization_id, uuid)",
            # Without the dedupe table, one row per uuid again (the oldest).
            f"INSERT INTO {TABLE} OVERRIDING SYSTEM VALUE SELECT * FROM {partitioned} ORDER BY id "
            "ON CONFLICT (organization_id, uuid) DO NOTHING",
            f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {partitioned}), 0) + 1, false)",
            *(f"CREATE INDEX {name} ON {TABLE} {columns}" for name, columns in INDEXES.items()),
            f"DROP TABLE {partitioned}",
        ],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0004_enduser_member_and_account"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventUuid",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "organization_id", "uuid", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("uuid", models.UUIDField()),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "organization",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.organization",
                    ),
                ),
            ],
        ),
        migrations.RunPython(partition_events, unpartition_events, elidable=False),
    ]
