"""DailyFeatureRecency (per feature and day, how long its users had been away) and the marks
of its stale days. The days already rolled up (those with a DailyOrgUsage row) are marked
stale rather than built here: until the next rollup runs rebuild them (`analytics.recency`,
~0.1 s a day on the 10 M-event bench, newest first, a minute's budget a run), reads count
from the per-feature bitmasks as before."""

import django.db.models.deletion
from django.db import migrations, models

_MARK_ROLLED_DAYS = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT organization_id, date FROM analytics_dailyorgusage GROUP BY organization_id, date
"""


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_MARK_ROLLED_DAYS, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0016_feature_active_days_one_index'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyFeatureRecency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('absent_before', models.JSONField(default=list)),
                ('feature', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.feature')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'date', 'feature'), name='dfr_org_date_feature_uniq')],
            },
        ),
        migrations.CreateModel(
            name='FeatureRecencyStale',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'date'), name='frs_org_date_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
