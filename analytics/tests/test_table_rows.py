# ruff: noqa: E501  (the templates' row markup, one table cell a line, as the templates had it)
"""The table rows built in Python (`features._feature_row`, `users._user_row`, an account's
`_person_row` and `_adopted_row`, the retention heat map's `_heat_cells`, the user timeline's
`_timeline`) print what the template markup they replace printed, cell
for cell, on rows covering every branch."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from analytics.views_pages import common
from analytics.views_pages.accounts import _adopted_row, _person_row
from analytics.views_pages.cohorts import _heat_cells, _heat_class
from analytics.views_pages.features import _feature_row, sparkline_points
from analytics.views_pages.users import _timeline, _user_row

# The rows' markup as the templates had it (whitespace between tags aside).
FEATURE_ROW = """{% load numbers %}<tr>
<td><a href="{% url 'analytics:feature-detail' row.feature_id %}">{{ row.feature_name }}</a>{% if row.feature_key != row.feature_name %}<div class="muted small mono">{{ row.feature_key }}</div>{% endif %}</td>
<td class="num">{{ row.events|thousands }}</td>
<td class="num">{{ row.avg_daily_active_users|tenths }}</td>
<td class="num">{% if row.avg_session_duration is None %}—{% else %}{{ row.avg_session_duration|tenths }} s{% endif %}</td>
<td class="num">{{ row.share|tenths }}%</td>
<td class="num">{% if row.change_pct is None %}<span class="change change-flat">new</span>{% else %}<span class="change change-{{ row.trend }}">{% if row.change_pct > 0 %}▲ +{% elif row.change_pct < 0 %}▼ {% endif %}{{ row.change_pct|tenths }}%</span>{% endif %}</td>
<td class="num" title="DAU/MAU: average daily users ÷ users over the period" data-testid="stickiness">{% if row.stickiness_pct is None %}—{% else %}{{ row.stickiness_pct|tenths }}%{% endif %}</td>
<td>{% if row.spark %}<svg class="sparkline" width="120" height="28" viewBox="0 0 120 28" role="img" aria-label="Daily events"><polygon class="spark-area" points="{{ row.spark.area }}"/><polyline points="{{ row.spark.line }}"/></svg>{% endif %}</td>
</tr>"""
USER_ROW = """{% load humanize numbers %}<tr data-testid="user-row">
<td><a href="{% url 'analytics:user-detail' row.user_id %}" class="mono">{{ row.user_id }}</a></td>
<td>{{ row.email|default:"—" }}</td>
<td class="num">{{ row.events|thousands }}</td>
<td class="num">{% if row.avg_session_duration is None %}—{% else %}{{ row.avg_session_duration|tenths }} s{% endif %}</td>
<td>{% if row.top_feature %}<span title="{{ row.top_feature }}">{{ row.top_feature_name }}</span>{% else %}—{% endif %}</td>
<td class="nowrap">{{ row.first_seen|day }}</td>
<td class="nowrap">{{ row.last_seen|naturaltime }}</td>
</tr>"""

PERSON_ROW = """{% load humanize numbers %}<tr><td><a href="{% url 'analytics:user-detail' u.user_id %}" class="mono">{{ u.user_id }}</a>{% if u.email %}<div class="muted small">{{ u.email }}</div>{% endif %}</td><td class="num">{{ u.events|thousands }}</td><td class="nowrap">{{ u.last_seen|naturaltime }}</td></tr>"""
ADOPTED_ROW = """{% load numbers %}<tr><td><a href="{% url 'analytics:feature-detail' f.feature_id %}">{{ f.feature_name }}</a></td><td class="num">{{ f.events|thousands }}</td><td class="num">{{ f.users|thousands }}</td></tr>"""


def _tight(html):
    return re.sub(r">\s+<", "><", html.strip())


def _feature(**changes):
    row = {
        "feature_id": 7,
        "feature_key": "export",
        "feature_name": "Export",
        "events": 1234567,
        "avg_daily_active_users": 12.25,
        "avg_session_duration": 42.05,
        "share": 33.333,
        "change_pct": 12.5,
        "stickiness_pct": 40.0,
    }
    return row | changes


FEATURE_ROWS = [
    _feature(),
    _feature(feature_key="x", feature_name="<b>Export & share</b>"),
    _feature(feature_key="Same", feature_name="Same"),
    _feature(avg_session_duration=None, stickiness_pct=None),
    _feature(change_pct=None),
    _feature(change_pct=0.0),
    _feature(change_pct=0.04),
    _feature(change_pct=-7.25),
    _feature(events=0, avg_daily_active_users=0, share=0, change_pct=-100.0, stickiness_pct=0.0),
]


@pytest.mark.parametrize("row", FEATURE_ROWS)
@pytest.mark.parametrize("values", [[], [0, 0, 0], [3, 9, 1, 0, 12]])
def test_feature_row_prints_as_the_template(row, values):
    context = {**row, "spark": sparkline_points(values), "trend": common.change_class(row["change_pct"])}
    expected = Template(FEATURE_ROW).render(Context({"row": context}))
    assert _tight(_feature_row(row, values)) == _tight(expected)


def _user(**changes):
    row = {
        "user_id": "user-1",
        "email": "one@customer.example",
        "events": 4321,
        "avg_session_duration": 17.5,
        "top_feature": "export",
        "first_seen": datetime(2026, 3, 4, 23, 30, tzinfo=UTC),
        "last_seen": timezone.now() - timedelta(hours=3),
    }
    return row | changes


USER_ROWS = [
    _user(),
    _user(user_id="team/42 ä & <co>", email="", top_feature=None, avg_session_duration=None),
    _user(email=None, top_feature="<script>", first_seen=date(2026, 1, 1)),
    _user(top_feature="unnamed", last_seen=timezone.now() - timedelta(days=400)),
    _user(first_seen=None, last_seen=None),
]
NAMES = {"export": "Export & share", "<script>": "Scripted"}


@pytest.mark.parametrize("row", USER_ROWS)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_user_row_prints_as_the_template(row, zone):
    with timezone.override(zone):
        context = {**row, "top_feature_name": NAMES.get(row["top_feature"], row["top_feature"])}
        expected = Template(USER_ROW).render(Context({"row": context}))
        assert _tight(_user_row(row, NAMES)) == _tight(expected)


@pytest.mark.parametrize(
    "person",
    [
        {"user_id": "u-1", "email": "a@b.example", "events": 12345, "last_seen": timezone.now() - timedelta(minutes=5)},
        {"user_id": "team/42 ä & <co>", "email": "", "events": 0, "last_seen": None},
        {"user_id": "u-2", "email": "<x>&y", "events": 7, "last_seen": datetime(2025, 1, 1, tzinfo=UTC)},
    ],
)
def test_person_row_prints_as_the_template(person):
    expected = Template(PERSON_ROW).render(Context({"u": person}))
    assert _tight(_person_row(person)) == _tight(expected)


@pytest.mark.parametrize("name", ["Export", "<b>Export & share</b>"])
def test_adopted_row_prints_as_the_template(name):
    feature = {"feature_id": 3, "feature_name": name, "events": 1234567, "users": 1000}
    expected = Template(ADOPTED_ROW).render(Context({"f": feature}))
    assert _tight(_adopted_row(feature)) == _tight(expected)


HEAT_CELL = (
    """<td class="cell {{ cell.cls }}">{% if cell.pct is not None %}{{ cell.pct|floatformat:0 }}%{% endif %}</td>"""
)


@pytest.mark.parametrize("weeks", [[], [100.0], [100.0, 12.5, 0.0, None, 99.5, 0.4], [33.333, 66.667]])
def test_heat_cells_print_as_the_template(weeks):
    width = 8
    cells = [{"pct": pct, "cls": _heat_class(pct)} for pct in weeks] + [{"pct": None, "cls": "heat-none"}] * (
        width - len(weeks)
    )
    expected = "".join(Template(HEAT_CELL).render(Context({"cell": cell})) for cell in cells)
    assert _heat_cells(weeks, width) == expected


TIMELINE = """{% for s in timeline %}
<li class="session{% if s.continued %} session-continued{% endif %}">
  <div class="session-head">
    <strong>{{ s.label }}</strong>
    <span class="muted small">{{ s.event_count }} event{{ s.event_count|pluralize }}{% if s.session_id %} · session <span class="mono">{{ s.session_id|truncatechars:18 }}</span>{% endif %}{% if s.until %} · until {{ s.until }}{% endif %}{% if s.continued %} · continued{% endif %}</span>
  </div>
  <ul class="events">
    {% for e in s.events %}
    <li><time datetime="{{ e.iso }}">{{ e.time }}</time><span>{{ e.feature_name }}</span>{% if e.event_type != "interaction" %}<span class="badge">{{ e.event_type }}</span>{% endif %}{% if e.duration %}<span class="muted">{{ e.duration }}</span>{% endif %}</li>
    {% endfor %}
  </ul>
</li>
{% endfor %}"""


def _template_context(sessions):
    """The sessions as the page handed them to the template before: labels formatted in UTC."""
    shaped = []
    for s in sessions:
        start, end = s["start"].astimezone(UTC), s["end"].astimezone(UTC)
        events = [
            {
                "iso": e["timestamp"].isoformat(),
                "time": f"{e['timestamp'].astimezone(UTC):%H:%M:%S}",
                "feature_name": e["feature_name"],
                "event_type": e["event_type"],
                "duration": "" if e["session_duration"] is None else f"{e['session_duration']:.0f} s",
            }
            for e in s["events"]
        ]
        label = f"{start:%a} {start.day} {start:%b %Y, %H:%M}"
        until = f"{end:%H:%M}" if end != start else ""
        shaped.append({**s, "label": label, "until": until, "events": events})
    return shaped


def _event(at, *, name="Export", event_type="interaction", duration=None):
    return {"timestamp": at, "feature_name": name, "event_type": event_type, "session_duration": duration}


def _session(session_id, events, *, continued=False):
    times = [e["timestamp"] for e in events]
    return {
        "session_id": session_id,
        "start": min(times),
        "end": max(times),
        "events": events,
        "event_count": len(events),
        "continued": continued,
    }


BERLIN = timezone.get_fixed_timezone(60)
SESSIONS = [
    _session("s-1", [_event(datetime(2026, 3, 4, 10, 5, tzinfo=UTC), duration=12.5)]),
    _session(
        "x" * 18,
        [
            _event(datetime(2026, 3, 4, 0, 30, tzinfo=BERLIN), name="<b>A & B</b>", event_type='"><i>', duration=0.0),
            _event(datetime(2026, 3, 3, 23, 59, 59, tzinfo=UTC), event_type="pageview"),
        ],
        continued=True,
    ),
    _session("y" * 19, [_event(datetime(2026, 1, 1, tzinfo=UTC)), _event(datetime(2026, 1, 1, 0, 45, tzinfo=UTC))]),
    _session("", [_event(datetime(2025, 12, 31, 23, 0, tzinfo=UTC), duration=3599.5)]),
    _session("cafe\u0301-session-with-accents", [_event(datetime(2025, 6, 1, 8, 0, tzinfo=UTC))]),
    _session("<sess>&", [_event(datetime(2025, 6, 1, 7, 0, tzinfo=UTC))]),
]


def test_timeline_prints_as_the_template():
    expected = Template(TIMELINE).render(Context({"timeline": _template_context(SESSIONS)}))
    assert _tight(_timeline(SESSIONS)) == _tight(expected)
