"""UserActiveDays, filled from the per-user rows already rolled up: each (user, day) row is
one bit, and (end user, date) being unique in DailyUserUsage, the sum of a block's bits is
their OR. Blocks as in analytics.active_days (56 days from Monday 1970-01-05)."""

import django.db.models.deletion
from django.db import migrations, models

_FILL_POSTGRESQL = """
INSERT INTO analytics_useractivedays (organization_id, end_user_id, block_start, active_days)
SELECT organization_id, end_user_id, DATE '1970-01-05' + ((date - DATE '1970-01-05') / 56) * 56,
       SUM(CAST(1 AS BIGINT) << ((date - DATE '1970-01-05') %% 56))::bigint
FROM analytics_dailyuserusage WHERE date >= DATE '1970-01-05'
GROUP BY 1, 2, 3
"""
_FILL_SQLITE = """
INSERT INTO analytics_useractivedays (organization_id, end_user_id, block_start, active_days)
SELECT organization_id, end_user_id, date('1970-01-05', '+' || (n / 56 * 56) || ' days'), SUM(1 << (n %% 56))
FROM (SELECT organization_id, end_user_id, CAST(julianday(date) - julianday('1970-01-05') AS INTEGER) AS n
      FROM analytics_dailyuserusage WHERE date >= '1970-01-05')
GROUP BY 1, 2, 3
"""


def fill(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(_FILL_POSTGRESQL if connection.vendor == "postgresql" else _FILL_SQLITE, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0004_saved_segment'),
        ('telemetry', '0005_usageevent_partitioned'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.CreateModel(
            name='UserActiveDays',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('block_start', models.DateField()),
                ('active_days', models.BigIntegerField(default=0)),
                ('end_user', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.enduser')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'indexes': [models.Index(fields=["organization", "block_start"], name='uad_org_block_idx')],
                'constraints': [models.UniqueConstraint(fields=('organization', 'end_user', 'block_start'), name='uad_org_user_block_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
