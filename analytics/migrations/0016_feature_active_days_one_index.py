"""UserFeatureActiveDays keeps one index: the unique key in (organization, block_start,
feature, end_user) order serves a range's blocks of every feature (its prefix), one
feature's, the rollup's upsert and its one-row probes for the copies of earlier blocks. With
two indexes, a probe planned on a near-empty table (a new installation's first days) read
the (organization, block_start) index and filtered the block's rows per probe. The new key
is built before the old one and the other index go, so the upsert always has its target."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0015_event_type_active_days"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="userfeatureactivedays",
            constraint=models.UniqueConstraint(
                fields=("organization", "block_start", "feature", "end_user"), name="ufad_org_block_feature_user_uniq"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="userfeatureactivedays",
            name="ufad_org_feature_block_user_uniq",
        ),
        migrations.RemoveIndex(
            model_name="userfeatureactivedays",
            name="ufad_org_block_idx",
        ),
    ]
