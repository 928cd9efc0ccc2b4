"""Breakdowns: a figure split by one dimension — feature, event type, age band, gender,
account (its external id; users without one are "(none)"), an end-user property
(`user.<name>`) or an event property (`event.<name>`) — as its top values and "other", for
usage-summary, timeseries and feature-usage.

Each dimension is read from the cheapest rows that carry it: features from the feature
rollups, age band and gender from the person-segment rollups and accounts from the account
rollups (events and session time, daily users) or the per-user rollups (distinct users, or a
filter the group rollup does not carry; distinct users per feature from the per-feature
active-day bitmasks), event type, event properties and user properties
from the dimension rollup (DailyDimensionUsage: events, session time, daily users) and
otherwise — a user-property or account filter, distinct users over a range or per week, a
feature's daily users per event value, a property the rollup has no row of — from the
per-user rollups or the range's raw events. Every function runs a fixed number of queries."""

from .anonymous import breakdown_anonymous_events
from .series import breakdown_by_feature, breakdown_series
from .sources import BREAKDOWN_LIMIT, OTHER
from .sources import raw_events_from as breakdown_raw_events_from
from .totals import breakdown_totals

__all__ = [
    "BREAKDOWN_LIMIT",
    "OTHER",
    "breakdown_anonymous_events",
    "breakdown_by_feature",
    "breakdown_raw_events_from",
    "breakdown_series",
    "breakdown_totals",
]
