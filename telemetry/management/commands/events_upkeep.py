from django.core.management.base import BaseCommand

from telemetry.services import partitions


class Command(BaseCommand):
    help = (
        "The nightly raw-event upkeep, by hand: create the coming months' partitions (PostgreSQL), "
        "drop raw events older than RAW_EVENT_RETENTION_MONTHS, forget uuids older than EVENT_DEDUPE_DAYS. "
        "With no option, all three."
    )

    def add_arguments(self, parser):
        parser.add_argument("--partitions", action="store_true", help="create the coming months' partitions")
        parser.add_argument("--retention", action="store_true", help="drop expired raw events")
        parser.add_argument("--dedupe", action="store_true", help="forget expired event uuids")

    def handle(self, *args, **options):
        every = not (options["partitions"] or options["retention"] or options["dedupe"])
        if every or options["partitions"]:
            created = partitions.event_partitions_prepare()
            self.stdout.write(f"Partitions created: {', '.join(created) or 'none'}")
        if every or options["retention"]:
            result = partitions.raw_events_expire()
            if result["horizon"] is None:
                self.stdout.write("Retention: RAW_EVENT_RETENTION_MONTHS is 0, raw events are kept.")
            else:
                dropped = ", ".join(result["dropped"]) or "none"
                self.stdout.write(
                    f"Retention: events before {result['horizon']} removed "
                    f"(partitions dropped: {dropped}; rows deleted: {result['rows_deleted']})."
                )
        if every or options["dedupe"]:
            self.stdout.write(f"Dedupe: {partitions.event_uuids_expire()} expired uuids forgotten.")
