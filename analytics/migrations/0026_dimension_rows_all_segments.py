"""DailyDimensionUsage: each row of a day summed over the person segments (age band and gender
"*", `rollup_dimensions.ALL_SEGMENTS`), filled here from the rows already rolled up, and
their own index. From then on the rollup writes them (`rollup_dimensions`), and the reads
without an age or gender filter take them (`queries.filters.dimension_segment`)."""

from django.db import migrations, models

_FILL = """
INSERT INTO analytics_dailydimensionusage (
    organization_id, date, feature_id, dimension, value, age_band, gender, event_count, active_users, sessions,
    total_session_duration, timed_events)
SELECT organization_id, date, feature_id, dimension, value, '*', '*', SUM(event_count), SUM(active_users),
       SUM(sessions), SUM(total_session_duration), SUM(timed_events)
FROM analytics_dailydimensionusage WHERE age_band <> '*'
GROUP BY organization_id, date, feature_id, dimension, value
"""
_EMPTY = "DELETE FROM analytics_dailydimensionusage WHERE age_band = '*'"


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No rollup writes the table meanwhile (its reads go on): a day rolled while the
            # rows are summed would keep sums of its old rows, or get two of them.
            cursor.execute("LOCK TABLE analytics_dailydimensionusage IN SHARE ROW EXCLUSIVE MODE")
        # Run again (or after days a newer rollup wrote), the summed rows are made anew.
        cursor.execute(_EMPTY)
        cursor.execute(_FILL)
        if connection.vendor == "postgresql":
            # The new rows' deferred foreign-key checks now: PostgreSQL builds no index on a
            # table with checks pending in the transaction.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def empty(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_EMPTY)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0025_user_days_index_covers_figures"),
    ]

    operations = [
        # The rows first, then their index: built once over them rather than entry by entry.
        migrations.RunPython(fill, empty),
        migrations.AddIndex(
            model_name="dailydimensionusage",
            index=models.Index(
                condition=models.Q(("age_band", "*")),
                fields=["organization", "dimension", "feature", "date"],
                name="ddu_all_segments_idx",
            ),
        ),
    ]
