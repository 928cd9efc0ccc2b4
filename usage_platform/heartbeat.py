"""Heartbeat files for the container health checks of the Celery worker and beat.

Neither process answers HTTP, and `celery inspect ping` starts a whole Celery client in the
container every interval. Instead each process touches a file from its own loop, and
`scripts/healthcheck.py` only reads the file's age: a hung loop stops the heartbeat.

- the worker: a bootstep whose timer runs in the worker's event loop (`WorkerHeartbeat`,
  added to the app in usage_platform/celery.py);
- beat: `HeartbeatScheduler`, django-celery-beat's scheduler touching the file on every
  tick (beat ticks at least every 5 s; `CELERY_BEAT_SCHEDULER` names it).

Files live in `HEARTBEAT_DIR` (`worker`, `beat`).
"""

from pathlib import Path

from celery import bootsteps
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

INTERVAL_SECONDS = 10.0


def heartbeat_path(name: str) -> Path:
    return Path(settings.HEARTBEAT_DIR) / name


def heartbeat_touch(name: str) -> None:
    path = heartbeat_path(name)
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


class WorkerHeartbeat(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        heartbeat_touch("worker")
        self.tref = worker.timer.call_repeatedly(INTERVAL_SECONDS, heartbeat_touch, ("worker",))

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


class HeartbeatScheduler(DatabaseScheduler):
    def tick(self, *args, **kwargs):
        heartbeat_touch("beat")
        return super().tick(*args, **kwargs)
