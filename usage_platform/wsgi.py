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
