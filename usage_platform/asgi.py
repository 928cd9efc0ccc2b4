import os

from django.core.asgi import get_asgi_application

from . import process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
# Before the settings load: web processes get DB_STATEMENT_TIMEOUT_MS (see wsgi.py).
process.kind = "web"
application = get_asgi_application()
