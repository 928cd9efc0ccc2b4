"""The one CSV helper: text a spreadsheet would run as a formula gets a leading apostrophe;
numbers, negative ones included, stay numbers."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from core.csv_export import csv_cell, csv_render

FORMULA = '=HYPERLINK("http://x","y")'


@pytest.mark.parametrize(
    "value,cell",
    [
        (FORMULA, "'" + FORMULA),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("-5", "'-5"),  # text that looks numeric is still text (an id): escaped
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("user-42", "user-42"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-12.5, -12.5),
        (-3, -3),
        (Decimal("-1.5"), Decimal("-1.5")),
        (True, True),
        (date(2025, 3, 1), date(2025, 3, 1)),
    ],
)
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell


def test_csv_render_round_trip():
    text = csv_render([{"user_id": FORMULA, "events": 3, "change_pct": -12.5, "email": None}])
    (row,) = csv.DictReader(io.StringIO(text))
    assert row == {"user_id": "'" + FORMULA, "events": "3", "change_pct": "-12.5", "email": ""}
    assert csv_render([]) == ""


def test_csv_render_without_rows_is_the_given_header():
    assert csv_render([], ["date", "value"]) == "date,value\r\n"
