"""The per-item `results` of a batch answer: what became of each item, in request order."""

from collections.abc import Iterable
from typing import Any


def batch_results(count: int, errors: list[dict[str, Any]], duplicate_indices: Iterable[int]) -> list[dict[str, Any]]:
    """`[{index, status: accepted|duplicate|rejected, field?, message?}]` for items `0…count−1`.

    An item with errors is `rejected` with its first error (the answer's `errors` lists them
    all); an item stored before, or repeated within the request, is a `duplicate`."""
    first_error: dict[int, dict[str, Any]] = {}
    for error in errors:
        first_error.setdefault(error["index"], error)
    duplicates = set(duplicate_indices)
    results: list[dict[str, Any]] = []
    for index in range(count):
        first = first_error.get(index)
        if first is not None:
            results.append({"index": index, "status": "rejected", "field": first["field"], "message": first["message"]})
        elif index in duplicates:
            results.append({"index": index, "status": "duplicate"})
        else:
            results.append({"index": index, "status": "accepted"})
    return results
