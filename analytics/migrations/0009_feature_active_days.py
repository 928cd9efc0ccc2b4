"""UserFeatureActiveDays, filled from the per-user feature rows already rolled up: each
(user, feature, day) row is one bit, and (feature, date, end user) being unique in
DailyUserFeatureUsage, the sum of a block's bits is their OR. Blocks as in
analytics.active_days (56 days from Monday 1970-01-05)."""

import django.db.models.deletion
from django.db import migrations, models

_FILL_POSTGRESQL = """
INSERT INTO analytics_userfeatureactivedays (organization_id, feature_id, end_user_id, block_start, active_days)
SELECT organization_id, feature_id, end_user_id, DATE '1970-01-05' + ((date - DATE '1970-01-05') / 56) * 56,
       SUM(CAST(1 AS BIGINT) << ((date - DATE '1970-01-05') %% 56))::bigint
FROM analytics_dailyuserfeatureusage WHERE date >= DATE '1970-01-05'
GROUP BY 1, 2, 3, 4
"""
_FILL_SQLITE = """
INSERT INTO analytics_userfeatureactivedays (organization_id, feature_id, end_user_id, block_start, active_days)
SELECT organization_id, feature_id, end_user_id, date('1970-01-05', '+' || (n / 56 * 56) || ' days'),
       SUM(1 << (n %% 56))
FROM (SELECT organization_id, feature_id, end_user_id,
             CAST(julianday(date) - julianday('1970-01-05') AS INTEGER) AS n
      FROM analytics_dailyuserfeatureusage WHERE date >= '1970-01-05')
GROUP BY 1, 2, 3, 4
"""


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(_FILL_POSTGRESQL if connection.vendor == "postgresql" else _FILL_SQLITE, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0008_dimension_sessions'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.CreateModel(
            name='UserFeatureActiveDays',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('block_start', models.DateField()),
                ('active_days', models.BigIntegerField(default=0)),
                ('end_user', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.enduser')),
                ('feature', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.feature')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'indexes': [models.Index(fields=['organization', 'block_start'], name='ufad_org_block_idx')],
                'constraints': [models.UniqueConstraint(fields=('organization', 'feature', 'block_start', 'end_user'), name='ufad_org_feature_block_user_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
