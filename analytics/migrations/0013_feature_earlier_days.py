"""UserFeatureActiveDays carries copies of the same user and feature's rows one and two
blocks earlier (`earlier_days_1`, `earlier_days_2`; 0 where there is none), so a feature's
distinct users over a range are counted without a DISTINCT (analytics.queries.active). The
rollup keeps them from here on (analytics.active_days); 0014 fills the rows already there.
Apart, so the table's exclusive lock for the new columns (with a constant default: no
rewrite on PostgreSQL) is not held while every row is filled."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0012_useractivedays_fillfactor"),
    ]

    operations = [
        migrations.AddField(
            model_name="userfeatureactivedays",
            name="earlier_days_1",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="userfeatureactivedays",
            name="earlier_days_2",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
    ]
