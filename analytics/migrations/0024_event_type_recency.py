"""DailyEventTypeRecency (DailyFeatureRecency per event type). As in 0023, every rolled day
with active users is marked stale rather than built here: the next rollups rebuild them, and
until then the event-type breakdowns over them count from the per-event-type bitmasks."""

import django.db.models.deletion
from django.db import migrations, models

_MARK_ROLLED_DAYS = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT organization_id, date FROM analytics_dailyorgusage WHERE active_users > 0
ON CONFLICT DO NOTHING
"""


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_MARK_ROLLED_DAYS, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0023_segment_recency'),
        ('tenants', '0004_organization_slug_not_digits'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyEventTypeRecency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('event_type', models.CharField(max_length=64)),
                ('gaps', models.JSONField(default=dict)),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'verbose_name': 'daily event type recency',
                'verbose_name_plural': 'daily event type recency rows',
                'constraints': [models.UniqueConstraint(fields=('organization', 'date', 'event_type'), name='detr_org_date_type_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
