from importlib import import_module

from django.apps import AppConfig
from django.db.models.signals import pre_delete


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # Registers this app's Celery tasks in every process, not only in workers: tasks are
        # sent by name (core.task_queue), and eager mode (tests, one-off runs) runs a task in
        # place only where it is registered.
        import_module(f"{self.name}.tasks")
        from telemetry.models import Feature

        from .feature_deletion import feature_days_mark_dirty

        pre_delete.connect(feature_days_mark_dirty, sender=Feature, dispatch_uid="analytics.feature_days_mark_dirty")
