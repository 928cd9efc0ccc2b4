"""UserActiveDays.events_w0…events_w7: each user's events in each week of the block, filled
from the per-user rows already rolled up (blocks as in analytics.active_days: 56 days from
Monday 1970-01-05; week k: days 7k..7k+6). From then on the rollup keeps them
(`active_days.rollup_active_days`)."""

from django.db import migrations, models

WEEKS = 8
_SET = ", ".join(f"events_w{k} = s.w{k}" for k in range(WEEKS))
_SUMS = ", ".join(f"SUM(CASE WHEN k % 56 / 7 = {k} THEN event_count ELSE 0 END) AS w{k}" for k in range(WEEKS))
_FILL_POSTGRESQL = f"""
UPDATE analytics_useractivedays a SET {_SET}
FROM (SELECT organization_id, end_user_id, DATE '1970-01-05' + k / 56 * 56 AS b, {_SUMS}
      FROM (SELECT organization_id, end_user_id, event_count, date - DATE '1970-01-05' AS k
            FROM analytics_dailyuserusage WHERE date >= DATE '1970-01-05') d
      GROUP BY 1, 2, 3) s
WHERE a.organization_id = s.organization_id AND a.end_user_id = s.end_user_id AND a.block_start = s.b
"""
_FILL_SQLITE = f"""
UPDATE analytics_useractivedays SET {_SET}
FROM (SELECT organization_id, end_user_id, date('1970-01-05', '+' || (k / 56 * 56) || ' days') AS b, {_SUMS}
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
        # No parameters: `%` is the modulo operator here, not a placeholder.
        cursor.execute(_FILL_POSTGRESQL if connection.vendor == "postgresql" else _FILL_SQLITE)


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0009_feature_active_days"),
    ]

    operations = [
        *(
            migrations.AddField(
                model_name="useractivedays",
                name=f"events_w{k}",
                field=models.IntegerField(default=0, db_default=0),
            )
            for k in range(WEEKS)
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
