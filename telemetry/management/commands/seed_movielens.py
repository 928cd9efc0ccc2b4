"""Demo data from MovieLens 100k (DESIGN, Demo data).

    manage.py seed_movielens --orgs 3 --split train --limit 2000 [--no-anomalies]
        [--source hf|synthetic|recbole|PATH] [--recent-days N] [--seed 42]

Then `manage.py rollup --all-days` computes the daily rollups the dashboards read.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from telemetry.seed.events import movielens_events_build
from telemetry.seed.sources import HUB_TIMEOUT_SECONDS, SourceUnavailable, movielens_load
from telemetry.seed.writer import DEMO_PASSWORD, movielens_seed


def _positive(value):
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Seed organisations Org-1…N with MovieLens 100k ratings turned into usage events."

    def add_arguments(self, parser):
        parser.add_argument("--orgs", type=_positive, default=3, help="number of organisations (default 3)")
        parser.add_argument("--split", default="train", help="dataset split on the hub (default train)")
        parser.add_argument("--limit", type=int, default=2000, help="number of events, 0 for all (default 2000)")
        parser.add_argument(
            "--no-anomalies",
            action="store_true",
            help="do not inject anomalies (2 %% tripled durations; with --recent-days, the demo bursts)",
        )
        parser.add_argument(
            "--source",
            default="hf",
            help="hf (hub, then local copy, recbole, synthetic), synthetic, recbole, or a file/folder path",
        )
        parser.add_argument(
            "--recent-days",
            type=_positive,
            default=None,
            help="spread the events over the N days ending now instead of 1997–98",
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed (durations, anomalies, synthetic data)")
        parser.add_argument(
            "--hub-timeout",
            type=float,
            default=HUB_TIMEOUT_SECONDS,
            help="seconds to wait for the hub before falling back",
        )

    def handle(self, *args, **opts):
        started = time.monotonic()
        if opts["limit"] < 0:
            raise CommandError("--limit must be 0 (all) or positive.")
        try:
            data = movielens_load(
                source=opts["source"],
                split=opts["split"],
                seed=opts["seed"],
                hub_timeout=opts["hub_timeout"],
                say=lambda line: self.stdout.write(line),
            )
        except SourceUnavailable as exc:
            raise CommandError(f"MovieLens source unavailable: {exc}")
        self.stdout.write(f"Source: {data.detail} — {len(data.ratings):,} ratings.")

        plan = movielens_events_build(
            data.ratings,
            orgs=opts["orgs"],
            limit=opts["limit"] or None,
            anomalies=not opts["no_anomalies"],
            recent_days=opts["recent_days"],
            seed=opts["seed"],
        )
        with tqdm(total=len(plan), unit="event", desc="Seeding", file=self.stderr._out, disable=None) as bar:
            result = movielens_seed(data=data, plan=plan, orgs=opts["orgs"], progress=bar.update)

        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.inserted:,} new events ({result.skipped:,} already there) "
                f"into {opts['orgs']} organisations in {elapsed:.1f} s."
            )
        )
        for name, count in result.per_org.items():
            self.stdout.write(f"  {name}: {count:,} new events")
        self.stdout.write("Demo admin logins:")
        for login in result.logins:
            note = "" if login.password else "  (existing account: unless its password was changed)"
            self.stdout.write(f"  {login.organization}: {login.email} / {DEMO_PASSWORD}{note}")
        self.stdout.write("Next: manage.py rollup --all-days")
