"""Writing to a row that a concurrent request may have deleted."""

from typing import Any, TypeVar

from django.db.models import Model

from .exceptions import NotFound

_Row = TypeVar("_Row", bound=Model)


def row_update(instance: _Row, *, missing: str, **changes: Any) -> _Row:
    """Write `changes` to `instance`'s row with one UPDATE and set them on `instance`.

    A row read at the start of a request can be deleted by another request before the write
    (a webhook PATCHed while it is DELETEd, an anomaly re-detected away): that is a 404
    (`NotFound(missing)`), where `save(update_fields=...)` raises a bare DatabaseError."""
    if changes and not type(instance)._default_manager.filter(pk=instance.pk).update(**changes):
        raise NotFound(missing)
    for name, value in changes.items():
        setattr(instance, name, value)
    return instance
