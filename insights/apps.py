from importlib import import_module

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    verbose_name = "Insights and alerts"

    def ready(self) -> None:
        # Registers this app's Celery tasks in every process, not only in workers: tasks are
        # sent by name (core.task_queue), and eager mode (tests, one-off runs) runs a task in
        # place only where it is registered.
        import_module(f"{self.name}.tasks")
        import_module(f"{self.name}.alerts.tasks")
