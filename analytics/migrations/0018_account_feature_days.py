"""The Accounts list's rollups: each account's last event per day on its all-features rows
(`DailyAccountUsage.last_event_at`), and the per-account feature bitmasks
(`AccountFeatureActiveDays`), both filled from the days already rolled up. The last events
come from the per-user rows through each end user's account now (the days' account rows were
built the same way, unless a user moved since); the bits are OR-ed (SQLite, which has no
BIT_OR, sums the distinct ones). Blocks as in analytics.active_days."""

import django.db.models.deletion
from django.db import migrations, models

# Per organisation, day and account (NULL: the users without one, two statements: an
# equality the planner can hash, and the NULL rows), the day's last event of its users.
_LAST_EVENT_SQL = """
UPDATE analytics_dailyaccountusage AS a SET last_event_at = x.last
FROM (
    SELECT d.organization_id, d.date, u.account_id, MAX(d.last_event_at) AS last
    FROM analytics_dailyuserusage d JOIN telemetry_enduser u ON u.id = d.end_user_id
    WHERE u.account_id {account}
    GROUP BY 1, 2, 3
) AS x
WHERE a.feature_id IS NULL AND a.organization_id = x.organization_id AND a.date = x.date
  AND a.account_id {joined}
"""
_LAST_EVENT_STATEMENTS = (
    _LAST_EVENT_SQL.format(account="IS NOT NULL", joined="= x.account_id"),
    _LAST_EVENT_SQL.format(account="IS NULL", joined="IS NULL"),
)
_BITS_POSTGRESQL = """
INSERT INTO analytics_accountfeatureactivedays (organization_id, account_id, feature_id, block_start, active_days)
SELECT organization_id, account_id, feature_id, DATE '1970-01-05' + ((date - DATE '1970-01-05') / 56) * 56,
       BIT_OR(CAST(1 AS BIGINT) << ((date - DATE '1970-01-05') %% 56))
FROM analytics_dailyaccountusage
WHERE date >= DATE '1970-01-05' AND account_id IS NOT NULL AND feature_id IS NOT NULL
GROUP BY 1, 2, 3, 4
"""
_BITS_SQLITE = """
INSERT INTO analytics_accountfeatureactivedays (organization_id, account_id, feature_id, block_start, active_days)
SELECT organization_id, account_id, feature_id, date('1970-01-05', '+' || (n / 56 * 56) || ' days'),
       SUM(1 << (n %% 56))
FROM (SELECT DISTINCT organization_id, account_id, feature_id,
             CAST(julianday(date) - julianday('1970-01-05') AS INTEGER) AS n
      FROM analytics_dailyaccountusage
      WHERE date >= '1970-01-05' AND account_id IS NOT NULL AND feature_id IS NOT NULL)
GROUP BY 1, 2, 3, 4
"""


def fill(apps, schema_editor):
    connection = schema_editor.connection
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for statement in _LAST_EVENT_STATEMENTS:
            cursor.execute(statement, [])
        cursor.execute(_BITS_POSTGRESQL if postgres else _BITS_SQLITE, [])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0017_feature_recency'),
        ('telemetry', '0006_usageevent_feature_index_covers_user'),
        ('tenants', '0002_api_key_allowed_origins'),
    ]

    operations = [
        migrations.AddField(
            model_name='dailyaccountusage',
            name='last_event_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='AccountFeatureActiveDays',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('block_start', models.DateField()),
                ('active_days', models.BigIntegerField(default=0)),
                ('account', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.account')),
                ('feature', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='telemetry.feature')),
                ('organization', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'block_start', 'account', 'feature'), name='afad_org_block_account_feature_uniq')],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
