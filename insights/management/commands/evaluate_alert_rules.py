from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from insights.alerts.delivery import alert_firings_deliver
from insights.alerts.evaluate import alert_rules_dry_run, alert_rules_evaluate
from insights.alerts.rules import alert_firings_of_day
from insights.management.commands.detect_anomalies import organisations


class Command(BaseCommand):
    help = (
        "Check the alert rules on one day. Without --send, a dry run: prints what would fire and records "
        "nothing. With --send, does what the after-rollup job does: records the firings and e-mails and "
        "posts webhooks for them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organisation id or slug (default: all)")
        parser.add_argument("--day", help="day to judge, YYYY-MM-DD (default: yesterday, UTC)")
        parser.add_argument(
            "--send",
            action="store_true",
            help="record the firings and e-mail and post webhooks for them (default: a dry run that records nothing)",
        )

    def handle(self, *args, **options):
        today = timezone.now().date()
        try:
            day = date.fromisoformat(options["day"]) if options["day"] else today - timedelta(days=1)
        except ValueError:
            raise CommandError("--day must be YYYY-MM-DD.")
        if day >= today:
            raise CommandError("--day must be a complete day (before today, UTC).")
        for org in organisations(options["org"]):
            # A rule fires once a day: one that fired before is not counted again below.
            earlier = list(alert_firings_of_day(org, day))
            if not options["send"]:
                # A dry run: a firing recorded here would be sent by the next rollup's run.
                would = alert_rules_dry_run(org, [day])
                self.stdout.write(
                    f"{org.slug}: {len(would)} rule{'' if len(would) == 1 else 's'} would fire on {day.isoformat()} "
                    "(dry run: nothing recorded or sent)"
                )
                for rule, _, measurement in would:
                    self.stdout.write(f"  - {rule.name}: {measurement.message}")
                self._already_fired(earlier, day)
                continue
            fired = alert_rules_evaluate(org, [day])
            sent = alert_firings_deliver(org, fired)
            self.stdout.write(
                f"{org.slug}: {len(fired)} rule{'' if len(fired) == 1 else 's'} fired on {day.isoformat()}, "
                f"{sent['firings']} sent ({sent['emails']} e-mail(s), {sent['webhooks']} webhook(s))"
            )
            self._already_fired(earlier, day)

    def _already_fired(self, firings, day):
        if not firings:
            return
        self.stdout.write(
            f"  {len(firings)} rule{'' if len(firings) == 1 else 's'} had already fired on {day.isoformat()} "
            "(not counted above; a rule fires once a day):"
        )
        for firing in firings:
            sent = f"sent {firing.notified_at:%Y-%m-%d %H:%M} UTC" if firing.notified_at else "not sent yet"
            self.stdout.write(f"  - {firing.rule.name}: {firing.message} ({sent})")
