"""The embedded cache: Django's file cache, culled so that what must stay does.

Without Redis, web, worker and beat share one cache directory. Django's FileBasedCache lists
that directory on every `set` and, once it holds MAX_ENTRIES files (300 by default), deletes a
random third of them. The dashboards fill 300 entries quickly (one per page, range and filter
set), so a cull came often and could take the rollup generations with it: an organisation's
generation (no expiry, part of every dashboard cache key) read as 0 again, and figures cached
under generation 0 before the last rollup came back within their timeout. Rate-limit counters
were reset the same way.

Here a cull:
- runs once every `CULL_EVERY` writes of a cache instance, not on every write (Django keeps one
  instance per thread), so a write costs no directory listing;
- deletes the expired entries first, then the entries that expire, least recently written
  first, down to MAX_ENTRIES less a CULL_FREQUENCY-th;
- never deletes an entry without expiry: there are few (one rollup generation per
  organisation), and losing one serves stale figures.
"""

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.filebased import FileBasedCache

DEFAULT_CULL_EVERY = 50


class FileCache(FileBasedCache):
    # Django's FileBasedCache has these; its stubs leave them out.
    _list_cache_files: Callable[[], list[str]]
    _delete: Callable[[str], bool]

    def __init__(self, dir: str, params: dict[str, Any]) -> None:
        super().__init__(dir, params)
        options = params.get("OPTIONS") or {}
        self._cull_every = max(1, int(options.get("CULL_EVERY", DEFAULT_CULL_EVERY)))
        self._writes_since_cull = 0

    def _cull(self) -> None:
        self._writes_since_cull += 1
        if self._writes_since_cull < self._cull_every:
            return
        self._writes_since_cull = 0
        files = self._list_cache_files()
        if len(files) < self._max_entries:
            return
        keep = self._max_entries - self._max_entries // self._cull_frequency if self._cull_frequency else 0
        now = time.time()
        left = len(files)
        expiring: list[tuple[float, str]] = []
        for fname in files:
            expiry, written = _expiry_and_mtime(fname)
            if expiry is None:
                continue
            if expiry < now:
                self._delete(fname)
                left -= 1
            else:
                expiring.append((written, fname))
        expiring.sort()
        for _written, fname in expiring[: max(0, left - keep)]:
            self._delete(fname)


def _expiry_and_mtime(fname: str) -> tuple[float | None, float]:
    """The entry's expiry (None: never expires) and when it was written. A file another
    process deleted meanwhile, or one that does not unpickle, reads as expired: deleted.
    (Writers write a temporary file and rename it: a listed file is whole.)"""
    try:
        with open(fname, "rb") as file:
            expiry = pickle.load(file)
            written = os.fstat(file.fileno()).st_mtime
    except (OSError, EOFError, pickle.UnpicklingError):
        return 0.0, 0.0
    return expiry, written
