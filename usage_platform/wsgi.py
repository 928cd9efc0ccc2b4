import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
application = get_wsgi_application()
# Import every view now, at worker boot, instead of in the first request a worker serves
# (about 2 s of imports that would otherwise land on some SDK's request).
import_module(settings.ROOT_URLCONF)
