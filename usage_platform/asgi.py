import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
# Before the settings load: web processes get DB_STATEMENT_TIMEOUT_MS (see wsgi.py).
os.environ.setdefault("USAGE_PLATFORM_PROCESS", "web")
application = get_asgi_application()
