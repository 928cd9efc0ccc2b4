"""Loaded by pytest before pytest-django reads the settings (`-p usage_platform.pytest_plugin`
in pyproject.toml's addopts), so `pytest` works from a clean environment: settings refuse to
start without SECRET_KEY when DEBUG is off, and conftest.py is imported too late to help.

Each run gets its own random key, inherited by the worker and consumer processes the tests
start. A SECRET_KEY already in the environment wins."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(48))
