from django.core.management.base import BaseCommand

from insights import narrative

from .detect_anomalies import organisations


class Command(BaseCommand):
    help = "Regenerate the narrative insight (Gemini, or heuristics) for each organisation."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organisation id or slug (default: all)")

    def handle(self, *args, **options):
        for org in organisations(options["org"]):
            insight = narrative.insight_current(org, refresh=True)
            self.stdout.write(f"{org.slug}: {insight.source} ({len(insight.bullets)} bullets)")
