from importlib import import_module

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete


def _forget_api_keys(**kwargs):
    from . import services

    services.api_keys_forget()


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self):
        # Its Celery tasks in every process: services send them by name (core.task_queue).
        import_module(f"{self.name}.tasks")

        # A key or an organisation deleted (the admin, a cascade) leaves this process's
        # API-key cache at once; other processes within API_KEY_CACHE_SECONDS.
        from .models import ApiKey, Organization

        post_delete.connect(_forget_api_keys, sender=ApiKey, dispatch_uid="tenants.forget_api_keys.key")
        post_delete.connect(_forget_api_keys, sender=Organization, dispatch_uid="tenants.forget_api_keys.org")

        # Here because `core` is a library, not an app with a ready() of its own.
        from core.pg_timestamps import fast_timestamps_install

        connection_created.connect(fast_timestamps_install, dispatch_uid="core.pg_timestamps")

        from .log_redaction import log_secrets_filter_install

        log_secrets_filter_install()
