import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants import org_deletion
from tenants.command_options import organization_named


class Command(BaseCommand):
    help = (
        "Delete an organisation and everything of it (events, end users, rollups, anomalies, alerts, people, "
        "keys), as the admin's delete does: it is shut at once (keys revoked, people signed out), then its "
        "rows are deleted here chunk by chunk, each chunk its own transaction. Interrupted, it resumes where "
        "it stopped: run it again, or leave it to the workers."
    )

    def add_arguments(self, parser):
        parser.add_argument("org", help="organisation id or slug")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument(
            "--chunk-rows", type=int, default=org_deletion.CHUNK_ROWS, help="rows per chunk and transaction"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        org = organization_named(options["org"])
        if options["chunk_rows"] < 1:
            raise CommandError("--chunk-rows must be at least 1.")
        if not options["yes"]:
            self._confirm(org)
        # This command's run does the deleting, so no task is sent to race it for the lease.
        org_deletion.organizations_deletion_request([org], send_task=False)
        bar = tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=options["no_progress"], desc=org.slug)
        with bar:

            def progress(table: str, rows: int) -> None:
                bar.update(rows - bar.n)
                bar.set_postfix(table=table, refresh=False)

            run = org_deletion.organization_delete_run(
                org.pk, chunk_rows=options["chunk_rows"], seconds=None, progress=progress
            )
        if run.state == "busy":
            raise CommandError(
                f"A worker is deleting {org.slug} right now ({run.total:,} rows so far); it finishes there, and "
                "its log shows the progress. Run this again to take over once its lease has run out "
                f"({org_deletion.LEASE} after its last chunk)."
            )
        if run.state == "gone":
            self.stdout.write(f"{org.slug} is already deleted.")
            return
        self.stdout.write(f"Deleted {org.name} ({org.slug}, id {org.pk}): {run.total:,} rows.")

    def _confirm(self, org):
        state = org_deletion.deletion_state(org)
        question = f"Delete {org.name} ({org.slug}, id {org.pk}, {state}) and all its data? Type yes to go on: "
        if not sys.stdin.isatty():
            raise CommandError("Not a terminal to confirm on: pass --yes.")
        if input(question).strip().lower() != "yes":
            raise CommandError("Nothing deleted.")
