"""`tenths`, `whole`, `thousands`, `day` and `iso_day` print what `floatformat:1`,
`floatformat:0`, `intcomma`, `date:"j M Y"` and `date:"Y-m-d"` print."""

import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template import Context, Template
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat
from django.utils import timezone as tz

from analytics.templatetags.numbers import day, iso_day, tenths, thousands, whole

EDGES = [
    0,
    0.0,
    -0.0,
    -0.04,
    -0.05,
    0.05,
    0.25,
    0.35,
    1.45,
    2.5,
    12,
    -7,
    1e6 + 0.05,
    123456789.95,
    1e-9,
    Decimal("2.25"),
    "3.14159",
    "12",
    None,
    "",
    "abc",
    float("inf"),
    float("nan"),
    True,
    1e22,
    1e27,
    1e28,
    -1e30,
    Decimal("123456789012345678901234567890.5"),
    0.5,
    -0.5,
    -0.4,
    99.5,
    12.4999,
]
ROUNDINGS = [(tenths, 1), (whole, 0)]


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize(("rounding", "places"), ROUNDINGS)
def test_edges_print_as_floatformat(value, rounding, places):
    assert rounding(value) == floatformat(value, places)


@pytest.mark.parametrize(("rounding", "places"), ROUNDINGS)
def test_random_figures_print_as_floatformat(rounding, places):
    rng = random.Random(5)
    values = [rng.uniform(-1000, 100000) for _ in range(3000)] + [rng.randrange(-50, 50) / 20 for _ in range(500)]
    values += [rng.randrange(0, 2001) / 20 for _ in range(500)]  # percentages, halves among them
    assert [rounding(v) for v in values] == [floatformat(v, places) for v in values]


def test_loads_in_a_template():
    assert Template("{% load numbers %}{{ x|tenths }}%").render(Context({"x": 12.345})) == "12.3%"


@pytest.mark.parametrize(
    "value", [0, 7, -7, 999, 1000, -1234567, 10**15, True, 1.5, 1234.5, Decimal("1234.50"), "12345", "abc", None, ""]
)
def test_thousands_prints_as_intcomma(value):
    assert thousands(value) == intcomma(value)


DAY_FILTERS = [("day", "j M Y"), ("iso_day", "Y-m-d")]


@pytest.mark.parametrize(
    "value",
    [
        date(2026, 3, 4),
        date(1, 1, 1),
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # 1 Jan in UTC
        datetime(2026, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # 31 May in UTC
        None,
        "",
        "2026-03-04",
    ],
)
@pytest.mark.parametrize(("name", "layout"), DAY_FILTERS)
def test_day_prints_as_the_date_filter_in_a_template(value, name, layout):
    context = Context({"v": value})
    expected = Template(f'{{{{ v|date:"{layout}" }}}}').render(context)
    assert Template(f"{{% load numbers %}}{{{{ v|{name} }}}}").render(context) == expected


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
@pytest.mark.parametrize(("name", "layout"), DAY_FILTERS)
def test_day_follows_the_current_time_zone_as_the_date_filter_does(zone, name, layout):
    value = datetime(2026, 5, 31, 20, 0, tzinfo=UTC)  # 1 Jun in Tokyo
    context = Context({"v": value})
    with tz.override(zone):
        expected = Template(f'{{{{ v|date:"{layout}" }}}}').render(context)
        assert Template(f"{{% load numbers %}}{{{{ v|{name} }}}}").render(context) == expected


def test_day_called_directly_prints_a_datetime_as_given():
    value = datetime(2026, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert day(value) == date_filter(value, "j M Y") == "1 Jun 2026"
    assert iso_day(value) == date_filter(value, "Y-m-d") == "2026-06-01"


def test_every_month_prints_as_the_date_filter():
    for month in range(1, 13):
        value = date(2026, month, 15)
        assert day(value) == date_filter(value, "j M Y")
        assert iso_day(value) == date_filter(value, "Y-m-d")
