"""The (organization, feature, timestamp) index of events also carries `end_user` (PostgreSQL
`INCLUDE`; SQLite builds the same index without it): a funnel step reads its users by an
index-only scan instead of visiting every matching row. Built before the old index is
dropped, so feature reads always have one. See docs/decisions.md (funnel at 10 M events)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0005_usageevent_partitioned"),
        ("tenants", "0002_api_key_allowed_origins"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usageevent",
            index=models.Index(
                fields=["organization", "feature", "timestamp"],
                include=("end_user",),
                name="event_org_feature_ts_user_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="usageevent", name="event_org_feature_ts_idx"),
    ]
