from importlib import import_module

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _forget_features(**kwargs):
    from .services import storage

    storage.feature_cache.clear()


def _forget_end_users(**kwargs):
    from .services import storage

    storage.end_user_cache.clear()


class TelemetryConfig(AppConfig):
    name = "telemetry"
    verbose_name = "Telemetry"

    def ready(self):
        # The ingestion caches (services/storage/) forget at once what this process
        # changes; other processes catch up when their entries expire.
        from .models import EndUser, Feature

        # Its Celery tasks in every process: services send them by name (core.task_queue).
        import_module(f"{self.name}.tasks")

        post_save.connect(_forget_features, sender=Feature, dispatch_uid="telemetry.forget_features.save")
        post_delete.connect(_forget_features, sender=Feature, dispatch_uid="telemetry.forget_features.delete")
        post_delete.connect(_forget_end_users, sender=EndUser, dispatch_uid="telemetry.forget_end_users")
