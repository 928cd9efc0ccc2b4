from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from insights import notify

from .detect_anomalies import organisations


class Command(BaseCommand):
    help = "Post a day's KPIs to every active export.daily webhook (default: yesterday)."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organisation id or slug (default: all)")
        parser.add_argument("--day", help="YYYY-MM-DD (default: yesterday, UTC)")

    def handle(self, *args, **options):
        try:
            day = date.fromisoformat(options["day"]) if options["day"] else timezone.now().date() - timedelta(days=1)
        except ValueError:
            raise CommandError("--day must be YYYY-MM-DD.")
        for org in organisations(options["org"]):
            self.stdout.write(f"{org.slug}: {notify.export_daily(org, day)} webhook(s)")
