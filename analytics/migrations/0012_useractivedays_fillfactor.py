"""UserActiveDays on PostgreSQL: pages filled to half (fillfactor 50).

A row is written on every active day of its 8-week block (its bit, its week's events): with
full pages each write moved the row to another page and left a dead version behind, and a
90-day backfill left the table ~24× its live size (337 MB for 145,000 rows on the 10 M-event
bench), which every distinct-users read then scanned. With room on the page the writes are
heap-only (no index entry) and their dead versions are pruned in place. Existing pages keep
their layout until rewritten (`VACUUM FULL analytics_useractivedays`, docs/scaling.md).
SQLite has no such setting: nothing to do there."""

from django.db import migrations


def _storage(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0011_per_user_rollup_no_fk_constraints"),
    ]

    operations = [
        migrations.RunPython(
            _storage("ALTER TABLE analytics_useractivedays SET (fillfactor = 50)"),
            _storage("ALTER TABLE analytics_useractivedays RESET (fillfactor)"),
        ),
    ]
