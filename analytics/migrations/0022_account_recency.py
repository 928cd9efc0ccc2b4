"""DailyAccountRecency (DailyFeatureRecency per account). As in 0020, the days that already
have recency rows are marked stale rather than built here: the next rollups rebuild them
(newest first, a minute's budget a run), and until then reads over them count from the
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
        ('analytics', '0021_admin_names'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0003_admin_names'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyAccountRecency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('gaps', models.JSONField(default=dict)),
                ('account', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.account')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'verbose_name': 'daily account recency',
                'verbose_name_plural': 'daily account recency rows',
                'indexes': [models.Index(fields=['organization', 'date'], name='dar_org_date_idx')],
                'constraints': [models.UniqueConstraint(fields=('organization', 'account', 'date'), name='dar_org_account_date_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
