"""A process-local map whose entries expire: the ingestion hot path's caches of API keys,
feature refs and end users (docs/decisions.md, "Process-local caches on the ingestion hot
path"). Each process has its own copy, so what one process changes reaches the others only
when their entries expire; callers clear their own process's copy on a change."""

import time
from collections.abc import Hashable, Iterable
from typing import Any


class LocalCache:
    """`get`/`set_many` with a time-to-live in seconds; a full cache is emptied, not evicted
    entry by entry (the working set refills it in one request)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, clock: float | None = None) -> Any:
        """The live value of `key`, or None. Pass `clock` (`time.monotonic()`) when looking
        up many keys at once."""
        hit = self._entries.get(key)
        if hit is None or hit[0] <= (time.monotonic() if clock is None else clock):
            return None
        return hit[1]

    def set_many(self, items: Iterable[tuple[Hashable, object]], ttl_seconds: float) -> None:
        """Store `(key, value)` pairs for `ttl_seconds` (nothing when it is 0 or less)."""
        if ttl_seconds <= 0:
            return
        items = list(items)
        if len(self._entries) + len(items) > self.max_entries:
            self._entries.clear()
        expires = time.monotonic() + ttl_seconds
        for key, value in items:
            self._entries[key] = (expires, value)

    def clear(self) -> None:
        self._entries.clear()
