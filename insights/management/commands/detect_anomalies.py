from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from insights import notify, services
from insights.queries import RANKING_DETECTOR
from tenants.command_options import organization_named
from tenants.models import Organization


def organisations(ref):
    if not ref:
        return list(Organization.objects.in_service().order_by("id"))
    return [organization_named(ref)]


class Command(BaseCommand):
    help = "Run the anomaly detectors over the rollups (what the after-rollup job does), optionally alerting."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organisation id or slug (default: all)")
        parser.add_argument("--end", help="last day to judge, YYYY-MM-DD (default: the last complete rolled-up day)")
        parser.add_argument("--days", type=int, default=services.DETECT_DAYS, help="days to judge, ending at --end")
        parser.add_argument("--alert", action="store_true", help="also e-mail and post webhooks for new anomalies")

    def handle(self, *args, **options):
        try:
            end = date.fromisoformat(options["end"]) if options["end"] else None
        except ValueError:
            raise CommandError("--end must be YYYY-MM-DD.")
        # Today's rollup is partial: judged, it is a drop on every feature (and, with
        # --alert, an e-mail about it). The after-rollup job never judges it either.
        if end is not None and end >= timezone.now().date():
            raise CommandError("--end must be a complete day (before today, UTC).")
        if not 1 <= options["days"] <= 3660:
            raise CommandError("--days must be between 1 and 3660.")
        for org in organisations(options["org"]):
            created = services.anomalies_detect(org, end=end, days=options["days"])
            # The unusual-features ranking is stored beside the anomalies but is not one of
            # them (the Insights page and the API count them apart): said apart here too.
            ranked = sum(1 for anomaly in created if anomaly.detector == RANKING_DETECTOR)
            found = len(created) - ranked
            line = f"{org.slug}: {found} new anomal{'y' if found == 1 else 'ies'}"
            if ranked:
                line += f" (and {ranked} rows of the unusual-features ranking)"
            if options["alert"]:
                sent = notify.alerts_send(org, created)
                line += f", {sent['anomalies']} alerted ({sent['emails']} e-mail(s), {sent['webhooks']} webhook(s))"
            self.stdout.write(line)
