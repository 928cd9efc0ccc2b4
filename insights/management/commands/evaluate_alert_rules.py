from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from insights.alerts.delivery import alert_firings_deliver
from insights.alerts.evaluate import alert_rules_evaluate
from insights.management.commands.detect_anomalies import organisations


class Command(BaseCommand):
    help = "Check the alert rules on one day (what the after-rollup job does), optionally sending what fired."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organisation id or slug (default: all)")
        parser.add_argument("--day", help="day to judge, YYYY-MM-DD (default: yesterday, UTC)")
        parser.add_argument("--send", action="store_true", help="also e-mail and post webhooks for new firings")

    def handle(self, *args, **options):
        today = timezone.now().date()
        try:
            day = date.fromisoformat(options["day"]) if options["day"] else today - timedelta(days=1)
        except ValueError:
            raise CommandError("--day must be YYYY-MM-DD.")
        if day >= today:
            raise CommandError("--day must be a complete day (before today, UTC).")
        for org in organisations(options["org"]):
            fired = alert_rules_evaluate(org, [day])
            line = f"{org.slug}: {len(fired)} rule{'' if len(fired) == 1 else 's'} fired on {day.isoformat()}"
            if options["send"]:
                sent = alert_firings_deliver(org, fired)
                line += f", {sent['firings']} sent ({sent['emails']} e-mail(s), {sent['webhooks']} webhook(s))"
            self.stdout.write(line)
