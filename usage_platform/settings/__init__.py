"""Settings for Usage Platform: every value from the environment or `.env`, in parts by
subject; `DJANGO_SETTINGS_MODULE=usage_platform.settings` is this package, which gathers
them. Each part imports by name what it reads of another (mostly `env` and the paths of
`base`), so the order below is only alphabetical.

The embedded default (no environment at all) is SQLite, local caches and a filesystem
Celery broker, so `make demo` needs no other service. Production sets DATABASE_URL
(PostgreSQL) and REDIS_URL. `.env.example` documents every variable read here.

The parts import nothing of the project's apps, and the package imports nothing of
`usage_platform` itself: scripts/healthcheck.py runs it alone (core/settings_probe.py).
"""

from .base import *  # noqa: F403
from .database import *  # noqa: F403
from .ingestion import *  # noqa: F403
from .logging import *  # noqa: F403
from .product import *  # noqa: F403
from .queue import *  # noqa: F403
from .security import *  # noqa: F403
