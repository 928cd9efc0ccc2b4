"""DailyFeatureSegmentRecency (DailyFeatureRecency per age band and gender). The days that
already have recency rows are marked stale rather than built here: the next rollups rebuild
them (`analytics.recency`, ~0.2 s a day on the 10 M-event bench, newest first, a minute's
budget a run), and until then reads over them, with or without a filter, count from the
per-feature bitmasks."""

import django.db.models.deletion
from django.db import migrations, models

_MARK_BUILT_DAYS = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT organization_id, date FROM analytics_dailyfeaturerecency GROUP BY organization_id, date
ON CONFLICT DO NOTHING
"""


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_MARK_BUILT_DAYS, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0019_feature_days_user_index'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyFeatureSegmentRecency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('age_band', models.CharField(blank=True, max_length=5)),
                ('gender', models.CharField(blank=True, max_length=1)),
                ('gaps', models.JSONField(default=dict)),
                ('feature', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.feature')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'date', 'feature', 'age_band', 'gender'), name='dfsr_org_date_feature_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
