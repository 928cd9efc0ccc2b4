"""Read side of analytics: plain functions taking an organisation and returning plain data.

The API, the pages, the insights engine and the tests all call these. Arguments are assumed
valid (see `analytics.params` for parsing); ranges are inclusive UTC days. Every function
runs a fixed number of queries, whatever the number of rows it returns.

Everything reads rollups (per organisation, feature, end user, person segment and account,
per day) except funnels, which need exact event times and read raw events through a plan
that cannot loop (`funnel_sql`), and one end user's own timeline (an index range of that
user).

One module per concern: `cache` (the per-generation cache decorator), `common` (periods,
rounding, the average-session rule, backend SQL pieces), `filters` (the filter set, one
place for rollup and raw reads), `summary`, `features`, `users`, `timeseries`, `retention`,
`funnel` and `accounts`. Callers import from the package.
"""

from .accounts import account_choices, account_detail, account_list
from .breakdowns import (
    breakdown_anonymous_events,
    breakdown_by_feature,
    breakdown_raw_events_from,
    breakdown_series,
    breakdown_totals,
)
from .cache import cached
from .common import session_average, value_names
from .days import last_complete_day
from .end_user import end_user_detail, end_user_is_own, end_user_timeline
from .features import feature_figures, feature_get, feature_sparklines, feature_usage
from .funnel import event_types_seen, funnel
from .retention import retention, retention_averages, retention_sql
from .summary import usage_summary
from .timeseries import timeseries
from .users import top_users, user_activity_page

__all__ = [
    "account_choices",
    "account_detail",
    "account_list",
    "breakdown_anonymous_events",
    "breakdown_by_feature",
    "breakdown_raw_events_from",
    "breakdown_series",
    "breakdown_totals",
    "cached",
    "end_user_detail",
    "end_user_is_own",
    "end_user_timeline",
    "event_types_seen",
    "feature_figures",
    "feature_get",
    "feature_sparklines",
    "feature_usage",
    "funnel",
    "last_complete_day",
    "retention",
    "retention_averages",
    "retention_sql",
    "session_average",
    "timeseries",
    "top_users",
    "usage_summary",
    "user_activity_page",
    "value_names",
]
