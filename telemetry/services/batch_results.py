"""The per-item `results` of a batch answer: what became of each item, in request order."""


def batch_results(count: int, errors: list, duplicate_indices) -> list[dict]:
    """`[{index, status: accepted|duplicate|rejected, field?, message?}]` for items `0…count−1`.

    An item with errors is `rejected` with its first error (the answer's `errors` lists them
    all); an item stored before, or repeated within the request, is a `duplicate`."""
    first_error = {}
    for error in errors:
        first_error.setdefault(error["index"], error)
    duplicates = set(duplicate_indices)
    results = []
    for index in range(count):
        error = first_error.get(index)
        if error is not None:
            results.append({"index": index, "status": "rejected", "field": error["field"], "message": error["message"]})
        elif index in duplicates:
            results.append({"index": index, "status": "duplicate"})
        else:
            results.append({"index": index, "status": "accepted"})
    return results
