from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from analytics import handover, params, rollup
from core.days import today
from core.exceptions import DomainError
from core.query_params import parse_date
from tenants.command_options import organization_named


class Command(BaseCommand):
    help = (
        "Recompute the daily rollups for a range of UTC days (default: yesterday and today), then queue the "
        "anomaly detection and alert rules for those days, as a scheduled rollup does."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="first day, YYYY-MM-DD")
        parser.add_argument("--until", help="last day, YYYY-MM-DD (default: today)")
        parser.add_argument("--org", help="organisation id or slug (default: all)")
        parser.add_argument("--all-days", action="store_true", help="every day from the first to the last event")
        parser.add_argument("--dirty", action="store_true", help="also re-roll the days marked by late events")
        parser.add_argument(
            "--recheck-bitmasks",
            action="store_true",
            help="bring every day's per-feature active-day bits in line with its rows, changed or not "
            "(a repair; a roll otherwise skips the days whose per-feature rows did not change)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--no-after-rollup",
            action="store_true",
            help="do not queue the anomaly detection and alert rules for the rolled days (which may e-mail and "
            "post webhooks), as a scheduled rollup does; for seeding a demo or a bench",
        )

    def handle(self, *args, **options):
        org = None
        if options["org"]:
            org = organization_named(options["org"])
        try:
            if options["all_days"]:
                if options["since"] or options["until"]:
                    # Ignored before: `--all-days --since …` rolled every day, not those asked for.
                    raise CommandError("--all-days takes no --since or --until: it rolls every day holding events.")
                span = rollup.event_days(org)
                if span is None:
                    self.stdout.write("No events: nothing to roll up.")
                    return
                since, until = span
            else:
                until = parse_date(options["until"], "until") if options["until"] else today()
                since = parse_date(options["since"], "since") if options["since"] else until - timedelta(days=1)
            if since > until:
                raise CommandError("--since must be on or before --until.")
            asked = since
            since = params.raw_events_kept_from(since, until, field="since", why=params.ROLLUP_KEPT)
        except DomainError as exc:
            raise CommandError(exc.detail)
        if since > asked:
            self.stdout.write(
                f"Days {asked}..{since - timedelta(days=1)} skipped: their raw events are past "
                "RAW_EVENT_RETENTION_MONTHS, and their rollups are kept as they were."
            )
        days = (until - since).days + 1
        marked = rollup.dirty_count(since, until, org)
        with tqdm(total=days, unit="day", disable=options["no_progress"], file=self.stderr) as bar:
            rows = rollup.rollup_range(
                since,
                until,
                org,
                progress=lambda day, n: bar.update(1),
                recheck_bitmasks=options["recheck_bitmasks"],
            )
        cleared = marked - rollup.dirty_count(since, until, org)
        marked_elsewhere = rollup.dirty_days() if options["dirty"] else {}
        dirty = rollup.rollup_dirty() if options["dirty"] else 0
        notified = 0
        if not options["no_after_rollup"]:
            notified = handover.insights_notify_range(since, until, org, also=marked_elsewhere)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled up {days} day(s) {since}..{until}: {rows} row(s) written; "
                f"{cleared} late-data mark(s) of those days cleared; {dirty} other dirty day(s) re-rolled; "
                f"anomaly detection and alert rules queued for {notified} organisation(s)."
            )
        )
