"""Webhook deliveries become an outbox: each attempt's row is written before its message is
sent (`insights.webhooks`). The attempts recorded before were all made: they get their
creation time as the time they were made."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0005_digest_channel_marks"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="attempted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunSQL(
            "UPDATE insights_webhookdelivery SET attempted_at = created_at", reverse_sql=migrations.RunSQL.noop
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("delivered_at__isnull", True), ("error", ""), ("status_code__isnull", True)),
                fields=["next_attempt_at"],
                name="webhook_delivery_open_idx",
            ),
        ),
    ]
