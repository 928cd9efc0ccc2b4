import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from core.request_body import ChunkedBodies

from . import process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
# Before the settings load: web processes get DB_STATEMENT_TIMEOUT_MS on their database
# connections; commands, consumers and Celery workers never import this module.
process.kind = "web"
application = ChunkedBodies(get_wsgi_application())
# Import every view now, at worker boot, instead of in the first request a worker serves
# (about 2 s of imports that would otherwise land on some SDK's request).
import_module(settings.ROOT_URLCONF)
# The cyclic collector, tuned for requests that parse thousands of JSON objects at once (an
# ingestion batch: 1,000 events are 2,000–5,000 dicts, all alive until the answer). What the
# boot loaded lives as long as the process: frozen out of the collector's reach, so full
# collections no longer scan it again and again (5–10 ms of a 1,000-event batch). The first
# generation is collected every 25,000 container allocations instead of every 700: above
# what a 1,000-message batch holds at its peak (a Segment batch about 12,000: five objects a
# message as parsed, the mapped events, their rows), so no collection walks a batch in
# flight. This app makes few cycles (the ingestion views cut DRF's, telemetry.views_api), and
# refcounting frees everything else at once (docs/decisions.md).
gc.collect()
gc.freeze()
gc.set_threshold(25_000, 10, 10)
