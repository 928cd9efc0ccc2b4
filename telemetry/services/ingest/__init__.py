"""Event ingestion: `events_ingest` (a batch) and `event_track` (one event) validate a
request's events in one pass (`validate`, with the value parsers in `values`, the request's
caller and clock in `context`, the end-user rows in `end_users`), then write them directly
or queue them on the Redis stream (`batch`)."""

from .batch import IngestResult, event_track, events_ingest

__all__ = ["IngestResult", "event_track", "events_ingest"]
