"""DailySegmentRecency (DailyFeatureSegmentRecency for all features). As in 0020 and 0022,
the rolled days are marked stale rather than built here: the next rollups rebuild them, and
until then the reads over them count from the active-day bitmasks."""

import django.db.models.deletion
from django.db import migrations, models

# Every rolled day with active users, whatever recency rows it has: the reads of all users
# (the summary's active users, unfiltered) take these rows, so no such day may go unmarked.
_MARK_BUILT_DAYS = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT organization_id, date FROM analytics_dailyorgusage WHERE active_users > 0
ON CONFLICT DO NOTHING
"""


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_MARK_BUILT_DAYS, [])



class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0022_account_recency'),
        ('tenants', '0004_organization_slug_not_digits'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailySegmentRecency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('age_band', models.CharField(blank=True, max_length=5)),
                ('gender', models.CharField(blank=True, max_length=1)),
                ('gaps', models.JSONField(default=dict)),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'verbose_name': 'daily segment recency',
                'verbose_name_plural': 'daily segment recency rows',
                'constraints': [models.UniqueConstraint(fields=('organization', 'date', 'age_band', 'gender'), name='dsr_org_date_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
