from core.lean_imports import optional_extras_hide

# First, before anything imports Django REST framework or PyJWT (core/lean_imports.py).
optional_extras_hide()

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
