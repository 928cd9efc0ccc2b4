"""The embedded cache: Django's file cache, culled so that what must stay does.

Without Redis, web, worker and beat share one cache directory. Django's FileBasedCache lists
that directory on every `set` and, once it holds MAX_ENTRIES files (300 by default), deletes a
random third of them. The dashboards fill 300 entries quickly (one per page, range and filter
set), so a cull came often and could take the rollup generations with it: an organisation's
generation (no expiry, part of every dashboard cache key) read as 0 again, and figures cached
under generation 0 before the last rollup came back within their timeout. Rate-limit counters
were reset the same way.

Here a cull:
- runs once every `CULL_EVERY` writes of the process, counted across its cache instances
  (Django makes one per thread, and a thread may serve a single request), so a write costs
  no directory listing;
- deletes the expired entries first, then the entries that expire, least recently written
  first, down to MAX_ENTRIES less a CULL_FREQUENCY-th (CULL_FREQUENCY 0: every entry that
  expires);
- never deletes an entry without expiry: there are few (one rollup generation per
  organisation), and losing one serves stale figures; nor one it cannot read (out of file
  descriptors, an I/O error): it may be one of those.
"""

import itertools
import os
import pickle
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.filebased import FileBasedCache

DEFAULT_CULL_EVERY = 50
# The process's cache writes: `next()` of a count is atomic under the GIL.
_writes = itertools.count(1)


class FileCache(FileBasedCache):
    # Django's FileBasedCache has these; its stubs leave them out.
    _list_cache_files: Callable[[], list[str]]
    _delete: Callable[[str], bool]

    def __init__(self, dir: str, params: dict[str, Any]) -> None:
        super().__init__(dir, params)
        options = params.get("OPTIONS") or {}
        self._cull_every = max(1, int(options.get("CULL_EVERY", DEFAULT_CULL_EVERY)))

    def _cull(self) -> None:
        if next(_writes) % self._cull_every:
            return
        files = self._list_cache_files()
        if len(files) < self._max_entries:
            return
        keep = self._max_entries - self._max_entries // self._cull_frequency if self._cull_frequency else 0
        now = time.time()
        left = len(files)
        expiring: list[tuple[float, str]] = []
        for fname in files:
            try:
                expiry, written = _expiry_and_mtime(fname)
            except FileNotFoundError:
                left -= 1  # deleted by another process meanwhile
                continue
            except OSError:
                continue  # unreadable now: kept (see the module docstring)
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
    """The entry's expiry (None: never expires) and when it was written; OSError when the
    file cannot be opened. A file whose expiry does not unpickle (truncated, or rewritten in
    place by `touch` as it was read) reads as expired: such an entry is a rate-limit counter
    or a cached figure, never a generation (set whole, by rename, and never touched)."""
    with open(fname, "rb") as file:
        try:
            expiry = pickle.load(file)
        except (EOFError, pickle.UnpicklingError):
            return 0.0, 0.0
        return expiry, os.fstat(file.fileno()).st_mtime
