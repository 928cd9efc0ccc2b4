"""UserActiveDays.event_count: each user's events over the block's days, filled from the
per-user rows already rolled up (blocks as in analytics.active_days: 56 days from Monday
1970-01-05). From then on the rollup keeps it (`active_days.rollup_block_events`)."""

from django.db import migrations, models

_FILL_POSTGRESQL = """
UPDATE analytics_useractivedays a SET event_count = s.n
FROM (SELECT organization_id, end_user_id, DATE '1970-01-05' + ((date - DATE '1970-01-05') / 56) * 56 AS b,
             SUM(event_count) AS n
      FROM analytics_dailyuserusage WHERE date >= DATE '1970-01-05' GROUP BY 1, 2, 3) s
WHERE a.organization_id = s.organization_id AND a.end_user_id = s.end_user_id AND a.block_start = s.b
"""
_FILL_SQLITE = """
UPDATE analytics_useractivedays SET event_count = s.n
FROM (SELECT organization_id, end_user_id, date('1970-01-05', '+' || (k / 56 * 56) || ' days') AS b,
             SUM(event_count) AS n
      FROM (SELECT organization_id, end_user_id, event_count,
                   CAST(julianday(date) - julianday('1970-01-05') AS INTEGER) AS k
            FROM analytics_dailyuserusage WHERE date >= '1970-01-05')
      GROUP BY 1, 2, 3) s
WHERE analytics_useractivedays.organization_id = s.organization_id
  AND analytics_useractivedays.end_user_id = s.end_user_id AND analytics_useractivedays.block_start = s.b
"""


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(_FILL_POSTGRESQL if connection.vendor == "postgresql" else _FILL_SQLITE, [])


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0007_account_rollup"),
    ]

    operations = [
        migrations.AddField(
            model_name="useractivedays",
            name="event_count",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
