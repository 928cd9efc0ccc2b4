"""Bulk import of an event export (CSV, JSON Lines, Parquet) through the ingestion path itself:
the file is read as a stream, in batches of `INGEST_MAX_BATCH` events, each handed to
`events_ingest` exactly as a request's batch would be (validation, end users, dedupe by uuid,
late-data marks, queue mode), so an import behaves like an SDK flushing history and a second
run of the same file stores nothing twice: an event without a `uuid` gets one derived from the
organisation, its position in the file and its content (`derived_uuid`), so the same row of the
same file is the same event however often it is imported, and two identical rows of one file
stay two events.

Each reader yields `(position, event)`: the line of a CSV or JSONL file (1 = the first line),
the row of a Parquet file (1 = the first row), so every item error names where it came from.
"""

import csv
import importlib.util
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from tenants.models import Organization

from .ingest import events_ingest
from .ingest.context import org_id_foreign
from .partitions import month_start

# (position in the file, the event as a request would carry it)
Located = tuple[int, Any]

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# CSV cells are text: these fields are numbers in an event.
_CSV_NUMBERS = {"session_duration": float, "age": int}
# The most item errors an import keeps (it counts them all).
MAX_ERRORS_KEPT = 100
TIMESTAMP_REQUIRED = "Required in an import: an exported event without its time would be stored as happening now."
# uuid5 namespace of the uuids given to imported events that have none (fixed: a re-run of an
# import must derive the same ones).
IMPORT_NAMESPACE = uuid.UUID("0c6a3e1e-8d0b-5b7e-a7f2-2f4b8a1d9c33")


class ImportFileError(Exception):
    """The file cannot be read as the format asked for (not an item error). `result`: what
    the batches before the unreadable part stored, when the file was read that far."""

    def __init__(self, message: str, result: "ImportResult | None" = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class ImportResult:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    queued: bool = False
    # Events that had no uuid and were given one (`derived_uuid`).
    derived: int = 0
    # {"position", "field", "message"}, at most MAX_ERRORS_KEPT.
    errors: list[dict[str, Any]] = field(default_factory=list)
    # The UTC months (first days) of the valid events: the partitions the import needs.
    months: set[date] = field(default_factory=set)
    # The line or row of the last event handed to ingestion.
    position: int = 0


def import_format(path: Path, requested: str | None = None) -> str:
    """The format of `path`: `requested`, else from its suffix; Parquet needs pyarrow."""
    fmt = requested or _SUFFIXES.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ImportFileError(
            f"Cannot tell the format of {path.name}: name it .csv, .jsonl or .parquet, or say --format."
        )
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ImportFileError("Reading Parquet needs pyarrow, which is not installed here (pip install pyarrow).")
    return fmt


def _csv_event(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as an event: empty cells left out, numbers and `metadata` (JSON) decoded,
    `metadata.<key>` columns gathered into the metadata object."""
    event: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for name, value in row.items():
        if name is None or value is None or value == "":
            continue  # a short row's missing cells, a long row's extra ones
        if name.startswith("metadata."):
            metadata[name.removeprefix("metadata.")] = value
        elif name == "metadata":
            try:
                event["metadata"] = orjson.loads(value)
            except orjson.JSONDecodeError:
                event["metadata"] = value  # validation answers with its own message
        elif name in _CSV_NUMBERS:
            try:
                event[name] = _CSV_NUMBERS[name](value)
            except ValueError:
                event[name] = value
        elif name == "timestamp" and value.lstrip("-").replace(".", "", 1).isdigit():
            event[name] = float(value)  # epoch seconds or milliseconds
        else:
            event[name] = value
    if metadata and isinstance(event.get("metadata", {}), dict):
        event["metadata"] = {**metadata, **event.get("metadata", {})}
    return event


def _read_csv(handle: io.TextIOWrapper) -> Iterator[Located]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        return
    for row in reader:
        yield reader.line_num, _csv_event(row)


def _read_jsonl(handle: io.TextIOWrapper) -> Iterator[Located]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError:
            yield number, _NotJson(line)


class _NotJson:
    """A JSONL line that is not JSON: reported as the item's error, the import goes on."""

    def __init__(self, line: str) -> None:
        self.line = line


def _read_parquet(path: Path, batch_size: int) -> Iterator[Located]:
    import pyarrow.parquet as pq

    position = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            position += 1
            yield position, {k: v for k, v in row.items() if v is not None}


def _parquet_unreadable() -> tuple[type[BaseException], ...]:
    """What pyarrow raises for a file that is not Parquet or is cut short: ArrowInvalid,
    ArrowIOError (an OSError) and their kin."""
    import pyarrow as pa

    return (pa.ArrowException, OSError)


def parquet_rows(path: Path) -> int:
    """The row count its footer declares. Raises ImportFileError for a file that is not
    Parquet, or whose footer was cut off."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except _parquet_unreadable() as exc:
        raise _unreadable(f"{path.name} is not a readable Parquet file: {exc}", ImportResult(), "row") from exc


def _batches(items: Iterable[Located], size: int) -> Iterator[list[Located]]:
    batch: list[Located] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def events_import(
    org: Organization,
    path: Path,
    *,
    fmt: str,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import the events of `path` (format `fmt`, see `import_format`) into `org`.
    `progress(items done, bytes or rows done)` after each batch. Raises ImportFileError when
    the file cannot be decoded; StorageUnavailable as ingestion does."""
    size = settings.INGEST_MAX_BATCH
    result = ImportResult()
    if fmt == "parquet":
        try:
            _import_items(org, _read_parquet(path, size), size, result, progress, lambda: result.read)
        except _parquet_unreadable() as exc:
            raise _unreadable(f"{path.name} is not a readable Parquet file: {exc}", result, "row") from exc
        return result
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
        try:
            reader = _read_csv(handle) if fmt == "csv" else _read_jsonl(handle)
            _import_items(org, reader, size, result, progress, raw.tell)
        except UnicodeDecodeError as exc:
            # exc.start counts from the start of the chunk the decoder was given (its bytes are
            # exc.object, the file's last read, which ended at raw.tell()).
            offset = raw.tell() - len(exc.object) + exc.start
            message = f"{path.name} is not UTF-8 text: {exc.reason} at byte {offset:,} of the file"
            raise _unreadable(message, result, "line") from exc
        except csv.Error as exc:
            raise _unreadable(f"{path.name} is not a readable CSV file: {exc}", result, "line") from exc
    return result


def _unreadable(message: str, result: ImportResult, unit: str) -> ImportFileError:
    """The error for a file unreadable from some point on, saying what the batches before that
    point did: they went through ingestion, and a corrected file imported again skips them."""
    message = message.rstrip(". ")
    if not result.read:
        return ImportFileError(f"{message}. Nothing was imported.", result)
    done = "queued" if result.queued else "stored"
    return ImportFileError(
        f"{message}. Before it, the {result.read:,} events up to {unit} {result.position:,} were imported:"
        f" {result.accepted:,} {done}, {result.duplicates:,} already there, {result.failed:,} refused; nothing"
        f" from {unit} {result.position + 1:,} on. Import the corrected file again: what was stored is skipped.",
        result,
    )


def _import_items(
    org: Organization,
    items: Iterable[Located],
    size: int,
    result: ImportResult,
    progress: Callable[[int, int], None] | None,
    where: Callable[[], int],
) -> None:
    for batch in _batches(items, size):
        positions = [position for position, _ in batch]
        events = _with_uuids(org, batch, result)
        result.read += len(batch)
        result.position = positions[-1]
        valid_at = []
        for index, item in enumerate(events):
            if isinstance(item, _NotJson):
                _keep_error(result, positions[index], "body", "Not a JSON object (invalid JSON).")
            elif org_id_foreign(org, item):
                # Refused on its own: ingestion refuses a whole request naming another tenant,
                # which stopped the import with a traceback after the batches before it.
                _keep_error(result, positions[index], "org_id", f"Names another organisation than {org.slug}.")
            elif isinstance(item, dict) and item.get("timestamp") in (None, ""):
                # The batch endpoint stamps such an event with its arrival; an export's event
                # stamped so would be history stored on the day of the import.
                _keep_error(result, positions[index], "timestamp", TIMESTAMP_REQUIRED)
            else:
                valid_at.append(index)
        outcome = events_ingest(org, [events[i] for i in valid_at])
        result.accepted += outcome.accepted
        result.duplicates += outcome.duplicates
        result.queued = result.queued or outcome.queued
        result.months.update(month_start(row["timestamp"]) for row in outcome.events)
        result.failed += len(batch) - len(valid_at)
        failed_items = set()
        for error in outcome.errors:
            failed_items.add(error["index"])
            _keep_error(result, positions[valid_at[error["index"]]], error["field"], error["message"])
        result.failed += len(failed_items)
        if progress is not None:
            progress(result.read, where())


def derived_uuid(org: Organization, position: int, event: dict[str, Any]) -> str:
    """The uuid of an imported event that has none: RFC 4122's uuid5 of the organisation, the
    event's position in its file and its content, keys sorted."""
    content = orjson.dumps(event, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return str(uuid.uuid5(IMPORT_NAMESPACE, f"{org.pk}:{position}:{content}"))


def _with_uuids(org: Organization, batch: list[Located], result: ImportResult) -> list[Any]:
    events = []
    for position, item in batch:
        if isinstance(item, dict) and item.get("uuid") in (None, ""):
            item = {**item, "uuid": derived_uuid(org, position, item)}
            result.derived += 1
        events.append(item)
    return events


def _keep_error(result: ImportResult, position: int, field_name: str, message: str) -> None:
    if len(result.errors) < MAX_ERRORS_KEPT:
        result.errors.append({"position": position, "field": field_name, "message": message})
