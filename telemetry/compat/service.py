"""SDK batches into the one ingestion service: the events, person updates and accounts a
mapping produced go through `services.ingest.events_ingest` together (one validation pass,
dedupe by uuid, queue mode, per-item errors), as a native batch does."""

from dataclasses import dataclass

from ..services import ingest
from ..services.batch_results import batch_results
from .mapping import SdkBatch


@dataclass
class SdkResult:
    """What became of each message of the request (`results`), and the totals."""

    errors: list
    results: list
    accepted: int
    duplicates: int

    @property
    def none_valid(self) -> bool:
        return self.accepted == 0 and self.duplicates == 0


def sdk_batch_ingest(org, batch: SdkBatch) -> SdkResult:
    """Store (or queue) one mapped SDK request for `org`. Raises what `events_ingest` raises
    (StorageUnavailable when neither the queue nor the database can take it)."""
    result = ingest.events_ingest(
        org,
        [],
        mapped=batch.mapped,
        uuids_canonical=batch.uuids_canonical,
        people=batch.people,
        accounts=batch.accounts,
    )
    errors = batch.errors + result.errors
    errors.sort(key=lambda error: error["index"])
    # The totals as `batch_results` sorts the messages (a message with an error is rejected,
    # else a duplicate when it is one), counted from the indices rather than the results.
    rejected = {error["index"] for error in errors}
    duplicates = len(set(result.duplicate_indices) - rejected)
    return SdkResult(
        errors=errors,
        results=batch_results(batch.count, errors, result.duplicate_indices),
        accepted=batch.count - len(rejected) - duplicates,
        duplicates=duplicates,
    )


def result_body(result: SdkResult) -> dict:
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "errors": result.errors,
        "results": result.results,
    }
