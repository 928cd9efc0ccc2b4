import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.exceptions import StorageUnavailable
from telemetry.services import importing, partitions
from tenants.command_options import organization_named
from tenants.services import api_key_authenticate


class Command(BaseCommand):
    help = (
        "Import an event export (CSV, JSON Lines, or Parquet when pyarrow is installed) into an organisation "
        "through the ingestion path: the same validation, end users, dedupe by uuid and late-data marks as "
        "the batch endpoint. CSV columns are event fields (feature, user_id, timestamp, uuid, event_type, "
        "session_id, session_duration, email, age, gender, metadata as JSON, metadata.<key>)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the export: .csv, .jsonl (.ndjson) or .parquet")
        parser.add_argument("--org", required=True, help="organisation id or slug")
        parser.add_argument("--key", required=True, help="an ingestion API key (upk_…) of that organisation")
        parser.add_argument("--format", choices=importing.FORMATS, help="when the file name does not tell")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        org = organization_named(options["org"])
        api_key = api_key_authenticate(raw_key=options["key"], origin=None)  # a command, not a browser
        if api_key is None or api_key.organization_id != org.pk:
            raise CommandError(f"--key is not an active ingestion key of {org.slug}.")
        try:
            fmt = importing.import_format(path, options["format"])
            total = importing.parquet_rows(path) if fmt == "parquet" else path.stat().st_size
            unit = "events" if fmt == "parquet" else "B"
            bar = tqdm(
                total=total,
                unit=unit,
                unit_scale=True,
                file=sys.stderr,
                disable=options["no_progress"],
                desc=path.name,
            )
            with bar:

                def progress(items: int, done: int) -> None:
                    bar.update(done - bar.n)
                    bar.set_postfix(events=items, refresh=False)

                result = importing.events_import(org, path, fmt=fmt, progress=progress)
        except importing.ImportFileError as exc:
            if exc.result is not None and exc.result.accepted:
                self._partitions_prepare(exc.result)
            raise CommandError(str(exc)) from exc
        except StorageUnavailable as exc:
            raise CommandError("The database is unavailable; nothing more was imported. Run the import again.") from exc
        self._partitions_prepare(result)
        for error in result.errors:
            where = "line" if fmt != "parquet" else "row"
            self.stderr.write(f"{where} {error['position']}: {error['field']}: {error['message']}")
        if result.failed > len(result.errors):
            self.stderr.write(f"… {result.failed - len(result.errors)} more refused events not shown")
        if result.queued:
            # Whether a queued event was stored before is known only to the consumer.
            outcome = (
                f"{result.accepted:,} queued (the stream consumer stores them, and drops those already stored), "
                f"{result.duplicates:,} repeated in the file (same uuid), {result.failed:,} refused."
            )
        else:
            outcome = (
                f"{result.accepted:,} stored, {result.duplicates:,} already there (same uuid), "
                f"{result.failed:,} refused."
            )
        self.stdout.write(
            f"Read {result.read:,} events: {outcome}"
            + (
                f" {result.derived:,} had no uuid and were given one from their place in the file and content:"
                " importing this file again stores none of them twice."
                if result.derived
                else ""
            )
        )
        if result.read and result.failed == result.read:
            raise CommandError("Every event was refused.")

    def _partitions_prepare(self, result: importing.ImportResult) -> None:
        """Partitions for the imported months (PostgreSQL). Written directly, events of a month
        without one went to the default partition and are moved; queued, the consumer may write
        them after this, so their months get partitions now and they land in them."""
        created = partitions.event_partitions_ensure(months=result.months)
        created += partitions.event_partitions_prepare()
        if created:
            self.stdout.write(f"Partitions created for the imported months: {', '.join(created)}")
