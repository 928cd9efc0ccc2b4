"""`tenths` prints what `floatformat:1` prints."""

import random
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.template.defaultfilters import floatformat

from analytics.templatetags.numbers import tenths

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
]


@pytest.mark.parametrize("value", EDGES)
def test_edges_print_as_floatformat(value):
    assert tenths(value) == floatformat(value, 1)


def test_random_figures_print_as_floatformat():
    rng = random.Random(5)
    values = [rng.uniform(-1000, 100000) for _ in range(3000)] + [rng.randrange(-50, 50) / 20 for _ in range(500)]
    assert [tenths(v) for v in values] == [floatformat(v, 1) for v in values]


def test_loads_in_a_template():
    assert Template("{% load numbers %}{{ x|tenths }}%").render(Context({"x": 12.345})) == "12.3%"
