"""The per-user daily rows' (organization, end_user, date) index carries the figures the
reads of a set of users' days sum (PostgreSQL INCLUDE; SQLite builds the plain index): an
account's or a segment's people and the ranked reads' edge days become index-only scans
(docs/decisions.md, 2026-12-03). Built in ~3 s for 3.1 M rows on the 10 M-event bench.

The new index is built before the old one is dropped: CREATE INDEX blocks the table's
writes only, where DROP INDEX takes a lock that blocks its reads too (on a standby as well,
which replays it) until the migration commits, an instant after it here."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0024_event_type_recency"),
        ("telemetry", "0006_usageevent_feature_index_covers_user"),
        ("tenants", "0004_organization_slug_not_digits"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="dailyuserusage",
            index=models.Index(
                fields=["organization", "end_user", "date"],
                include=(
                    "event_count",
                    "sessions",
                    "total_session_duration",
                    "timed_events",
                    "first_event_at",
                    "last_event_at",
                ),
                name="duu_org_user_figures_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="dailyuserusage", name="duu_org_user_date_idx"),
    ]
