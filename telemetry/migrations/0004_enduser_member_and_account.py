import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """EndUser.account named the platform member whose own profile it is; it becomes `member`,
    and `account` is now the tenant's customer company (DESIGN "Accounts and segments")."""

    dependencies = [
        ("telemetry", "0003_account"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameField(model_name="enduser", old_name="account", new_name="member"),
        migrations.AddField(
            model_name="enduser",
            name="account",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="end_users",
                to="telemetry.account",
            ),
        ),
        migrations.AddIndex(
            model_name="enduser",
            index=models.Index(
                condition=models.Q(("account__isnull", False)), fields=["account"], name="enduser_account_idx"
            ),
        ),
    ]
