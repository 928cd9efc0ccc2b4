"""UserFeatureActiveDays carries copies of the same user and feature's rows one and two
blocks earlier (`earlier_days_1`, `earlier_days_2`; 0 where there is none), so a feature's
distinct users over a range are counted without a DISTINCT (analytics.queries.active). The
rollup keeps them from here on (analytics.active_days); the rows already there are filled
from each other (blocks of 56 days)."""

from django.db import migrations, models

_FILL_POSTGRESQL = """
UPDATE analytics_userfeatureactivedays AS t SET {column} = p.active_days
FROM analytics_userfeatureactivedays AS p
WHERE p.organization_id = t.organization_id AND p.feature_id = t.feature_id
  AND p.end_user_id = t.end_user_id AND p.block_start = t.block_start - {days}
"""
_FILL_SQLITE = """
UPDATE analytics_userfeatureactivedays SET {column} = COALESCE((
    SELECT p.active_days FROM analytics_userfeatureactivedays AS p
    WHERE p.organization_id = analytics_userfeatureactivedays.organization_id
      AND p.feature_id = analytics_userfeatureactivedays.feature_id
      AND p.end_user_id = analytics_userfeatureactivedays.end_user_id
      AND p.block_start = date(analytics_userfeatureactivedays.block_start, '-{days} days')), 0)
"""


def fill(apps, schema_editor):
    connection = schema_editor.connection
    sql = _FILL_POSTGRESQL if connection.vendor == "postgresql" else _FILL_SQLITE
    with connection.cursor() as cursor:
        for column, days in (("earlier_days_1", 56), ("earlier_days_2", 112)):
            cursor.execute(sql.format(column=column, days=days), [])


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0012_useractivedays_fillfactor"),
    ]

    operations = [
        migrations.AddField(
            model_name="userfeatureactivedays",
            name="earlier_days_1",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="userfeatureactivedays",
            name="earlier_days_2",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
