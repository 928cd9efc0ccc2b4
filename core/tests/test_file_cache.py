"""The embedded file cache's cull: expired entries first, then the oldest, never an entry
without expiry (the rollup generations), and no directory listing on every write."""

import errno
import os
import time
from pathlib import Path

from django.core.cache.backends.filebased import FileBasedCache

from core import file_cache
from core.file_cache import FileCache


def _cache(directory: Path, max_entries: int = 30, cull_every: int = 5) -> FileCache:
    return FileCache(str(directory), {"OPTIONS": {"MAX_ENTRIES": max_entries, "CULL_EVERY": cull_every}})


def _entries(directory: Path) -> int:
    return len(list(directory.glob("*.djcache")))


def test_a_cull_keeps_the_entries_without_expiry_and_the_newest(tmp_path):
    cache = _cache(tmp_path)
    cache.set("rollup-generation:1", 1234, timeout=None)
    for i in range(200):
        cache.set(f"figure:{i}", i, timeout=600)
    assert cache.get("rollup-generation:1") == 1234
    # Never more than MAX_ENTRIES plus the writes between two culls.
    assert _entries(tmp_path) <= 30 + 5
    assert cache.get("figure:199") == 199 and cache.get("figure:0") is None


def test_django_s_own_cull_loses_the_generation(tmp_path):
    """Why the subclass exists: the same writes through FileBasedCache delete the entry
    without expiry sooner or later (a random third at each of ~37 culls: kept with p < 1e-6)."""
    cache = FileBasedCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 30}})
    cache.set("rollup-generation:1", 1234, timeout=None)
    for i in range(400):
        cache.set(f"figure:{i}", i, timeout=600)
    assert cache.get("rollup-generation:1") is None


def test_expired_entries_go_before_older_live_ones(tmp_path):
    cache = _cache(tmp_path, max_entries=10, cull_every=1)
    for i in range(6):
        cache.set(f"old:{i}", i, timeout=600)
    past = time.time() - 60
    for path in tmp_path.glob("*.djcache"):
        os.utime(path, (past, past))  # the live entries are the oldest written
    for i in range(4):
        cache.set(f"short:{i}", i, timeout=0.05)
    time.sleep(0.1)
    cache.set("new", 1, timeout=600)
    assert [cache.get(f"old:{i}") for i in range(6)] == list(range(6))
    assert cache.get("new") == 1


def test_a_cull_waits_for_its_turn(tmp_path, monkeypatch):
    cache = _cache(tmp_path, cull_every=10)
    listings = []
    real_list = cache._list_cache_files
    monkeypatch.setattr(cache, "_list_cache_files", lambda: listings.append(1) or real_list())
    for i in range(30):
        cache.set(f"figure:{i}", i, timeout=600)
    assert len(listings) == 3


def test_writes_are_counted_across_short_lived_instances(tmp_path):
    """Django makes a cache instance per thread; a thread may serve one request and end.
    The turn to cull is the process's, so such instances cull all the same."""
    for i in range(40):
        cache = _cache(tmp_path, max_entries=10, cull_every=5)
        for k in range(4):  # fewer writes than CULL_EVERY per instance
            cache.set(f"figure:{i}:{k}", k, timeout=600)
    assert _entries(tmp_path) <= 10 + 5


def test_an_entry_that_cannot_be_read_is_kept(tmp_path, monkeypatch):
    """Out of file descriptors or after an I/O error, an entry cannot be opened: it may be a
    generation, so it stays, though here it is the oldest entry and one that expires."""
    cache = _cache(tmp_path, max_entries=10, cull_every=1)
    cache.set("unreadable", 1, timeout=600)
    (unreadable,) = tmp_path.glob("*.djcache")
    old = time.time() - 3600
    os.utime(unreadable, (old, old))
    real_open = open

    def open_failing_for_it(path, *args, **kwargs):
        if Path(path) == unreadable:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(file_cache, "open", open_failing_for_it, raising=False)
    for i in range(30):
        cache.set(f"figure:{i}", i, timeout=600)
    monkeypatch.undo()
    assert unreadable.exists() and cache.get("unreadable") == 1
    assert cache.get("figure:29") == 29 and _entries(tmp_path) <= 10
