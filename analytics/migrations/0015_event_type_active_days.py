"""UserEventTypeActiveDays, half-full pages on PostgreSQL (fillfactor 50: its rows are
written on every active day of their block, as UserActiveDays'), filled from the raw events
of the days already rolled up (those with a DailyOrgUsage row): each distinct (user, event
type, day) is one bit, so the sum of a block's bits is their OR. Blocks as in
analytics.active_days (56 days from Monday 1970-01-05). Anonymous events carry no user."""

import django.db.models.deletion
from django.db import migrations, models

_FILL_POSTGRESQL = """
INSERT INTO analytics_usereventtypeactivedays (organization_id, end_user_id, event_type, block_start, active_days)
SELECT organization_id, end_user_id, event_type, DATE '1970-01-05' + (n / 56) * 56,
       SUM(CAST(1 AS BIGINT) << (n %% 56))::bigint
FROM (
    SELECT DISTINCT e.organization_id, e.end_user_id, e.event_type,
           (e.timestamp AT TIME ZONE 'UTC')::date - DATE '1970-01-05' AS n
    FROM telemetry_usageevent e
    WHERE e.end_user_id IS NOT NULL AND e.timestamp >= TIMESTAMPTZ '1970-01-05 00:00:00+00'
) d
WHERE EXISTS (
    SELECT 1 FROM analytics_dailyorgusage o WHERE o.organization_id = d.organization_id AND o.date = DATE '1970-01-05' + d.n)
GROUP BY 1, 2, 3, 4
"""
_FILL_SQLITE = """
INSERT INTO analytics_usereventtypeactivedays (organization_id, end_user_id, event_type, block_start, active_days)
SELECT organization_id, end_user_id, event_type, date('1970-01-05', '+' || (n / 56 * 56) || ' days'),
       SUM(1 << (n %% 56))
FROM (
    SELECT DISTINCT e.organization_id, e.end_user_id, e.event_type,
           CAST(julianday(date(e.timestamp)) - julianday('1970-01-05') AS INTEGER) AS n
    FROM telemetry_usageevent e WHERE e.end_user_id IS NOT NULL AND e.timestamp >= '1970-01-05'
) d
WHERE EXISTS (
    SELECT 1 FROM analytics_dailyorgusage o
    WHERE o.organization_id = d.organization_id AND o.date = date('1970-01-05', '+' || d.n || ' days'))
GROUP BY 1, 2, 3, 4
"""


def half_full_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE analytics_usereventtypeactivedays SET (fillfactor = 50)")


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The distinct (user, type, day) of every event: hashed in memory, not spilled.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute(_FILL_POSTGRESQL, [])
        else:
            cursor.execute(_FILL_SQLITE, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0014_feature_earlier_days_fill'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.CreateModel(
            name='UserEventTypeActiveDays',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_type', models.CharField(max_length=64)),
                ('block_start', models.DateField()),
                ('active_days', models.BigIntegerField(default=0)),
                ('end_user', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.enduser')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'block_start', 'event_type', 'end_user'), name='uetad_org_block_type_user_uniq')],
            },
        ),
        migrations.RunPython(half_full_pages, migrations.RunPython.noop),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
