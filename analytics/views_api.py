"""Analytics API: thin views. Each parses its query string with `analytics.params`, calls one
function of `analytics.queries` (or the rollup service) for `self.org`, and renders it.
`?format=csv` on user-activity, feature-usage and timeseries downloads the rows as CSV."""

from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from core.api import body_check, int_query
from core.csv_export import csv_render
from core.db_routing import ReplicaReadsMixin
from core.openapi import ERROR
from core.pagination import page_body, pagination_parameters
from core.query_params import MAX_PAGE_SIZE, MAX_RANGE_DAYS
from core.strict_query import strict_schema
from tenants.models import Role
from tenants.permissions import OrgAPIView

from . import exports, handover, params, queries, rollup, schema


class CSVRenderer(BaseRenderer):
    """Renders a list of flat dicts (the view passes the rows, not the JSON envelope)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # csv_render escapes text cells a spreadsheet would run as formulas. No rows still
        # makes a CSV file, its header line (an empty body would lose its Content-Type).
        view = (renderer_context or {}).get("view")
        rows = data if isinstance(data, list) else [data]
        return csv_render(rows, getattr(view, "csv_columns", ())).encode(self.charset)


def _date_params(*, default_note="last 30 days"):
    return [
        OpenApiParameter("start", OpenApiTypes.DATE, description=f"first UTC day, inclusive (default: {default_note})"),
        OpenApiParameter("end", OpenApiTypes.DATE, description="last UTC day, inclusive (default: today)"),
    ]


FEATURE_ID_PARAM = OpenApiParameter("feature_id", OpenApiTypes.INT, description="feature id (instead of feature)")
PERSON_FILTER_PARAMS = [
    OpenApiParameter("age", OpenApiTypes.STR, enum=list(params.AGE_BANDS)),
    OpenApiParameter("gender", OpenApiTypes.STR, enum=["F", "M", "O"]),
    OpenApiParameter("account", OpenApiTypes.STR, description="account external id (the tenant's own; unknown: 400)"),
    OpenApiParameter(
        "segment", OpenApiTypes.INT, description="a saved segment's id: its filters (a filter given beside it wins)"
    ),
    OpenApiParameter(
        "user.<property>",
        OpenApiTypes.STR,
        description="e.g. user.plan=pro: end users whose profile property equals the value (as text)",
    ),
]
FEATURE_FILTER_PARAMS = [
    OpenApiParameter(
        "feature", OpenApiTypes.STR, description="feature id, key, or name (any case; one feature of that name)"
    ),
    FEATURE_ID_PARAM,
]
FILTER_PARAMS = [*FEATURE_FILTER_PARAMS, *PERSON_FILTER_PARAMS]
BREAKDOWN_PARAM = OpenApiParameter(
    "breakdown",
    OpenApiTypes.STR,
    description=(
        "feature, event_type, age, gender, account, user.<property> or event.<property>: the top 10 values "
        'and "other" (account: users without one are "(none)")'
    ),
)
FORMAT_PARAM = OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv downloads the rows")
BAD_INPUT = ERROR


def _breakdown_notes(org, breakdown, start, end, filters):
    """What a breakdown's answer says beside its values: `anonymous_events` for a breakdown
    by who the end user is, `raw_events_from` where part of the range's raw events have
    expired (`queries.breakdown_raw_events_from`)."""
    notes = {}
    n = queries.breakdown_anonymous_events(org, dimension=breakdown, start=start, end=end, filters=filters)
    if n is not None:
        notes["anonymous_events"] = n
    first_kept = queries.breakdown_raw_events_from(breakdown, start)
    if first_kept is not None:
        notes["raw_events_from"] = first_kept
    return notes


@extend_schema(tags=["analytics"])
class AnalyticsView(ReplicaReadsMixin, OrgAPIView):
    """GETs (and their CSV exports) read from the replica when there is one; POST
    aggregate/run writes on the primary, and the figures read after it come from there too.
    Each operation takes the query parameters its `strict_schema` lists, and refuses others."""

    default_role = Role.ANALYST


class CSVExportMixin:
    """JSON by default; `?format=csv` returns `rows` as an attachment. Errors stay JSON.
    `csv_columns` heads the file when there are no rows."""

    renderer_classes = [JSONRenderer, CSVRenderer]
    csv_name = "export"
    csv_columns: tuple[str, ...] = ()

    def wants_csv(self):
        return getattr(self.request, "accepted_renderer", None) is not None and (
            self.request.accepted_renderer.format == "csv"
        )

    def csv_response(self, rows):
        response = Response(rows)
        response["Content-Disposition"] = f'attachment; filename="{self.csv_name}.csv"'
        return response

    def handle_exception(self, exc):
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class UsageSummaryView(AnalyticsView):
    @strict_schema(
        summary="KPIs with the previous period and % change",
        parameters=[*_date_params(), *FILTER_PARAMS, BREAKDOWN_PARAM],
        responses={200: schema.UsageSummary, 400: BAD_INPUT},
    )
    def get(self, request):
        args = params.summary_params(request.query_params)
        filters = params.summary_filters(self.org, request.query_params)
        breakdown = params.breakdown_param(request.query_params)
        data = queries.usage_summary(self.org, args["start"], args["end"], filters=filters)
        if breakdown:
            split = {"dimension": breakdown, "start": args["start"], "end": args["end"], "filters": filters}
            data = data | {
                "breakdown": {
                    "by": breakdown,
                    "events": queries.breakdown_totals(self.org, metric="events", **split),
                    "active_users": queries.breakdown_totals(self.org, metric="active_users", **split),
                    **_breakdown_notes(self.org, breakdown, args["start"], args["end"], filters),
                }
            }
        return Response(data)


class FeatureUsageView(CSVExportMixin, AnalyticsView):
    csv_name = "feature-usage"
    csv_columns = exports.FEATURE_USAGE_COLUMNS

    @strict_schema(
        summary="Per-feature usage from the daily rollups",
        parameters=[*_date_params(), *FILTER_PARAMS, BREAKDOWN_PARAM, FORMAT_PARAM],
        responses={200: schema.FeatureUsage, 400: BAD_INPUT},
    )
    def get(self, request):
        args = params.feature_usage_params(self.org, request.query_params)
        breakdown = params.breakdown_param(request.query_params)
        rows = queries.feature_usage(self.org, args["start"], args["end"], filters=args["filters"], stickiness=True)
        if breakdown:
            split = queries.breakdown_by_feature(
                self.org, dimension=breakdown, start=args["start"], end=args["end"], filters=args["filters"]
            )
            rows = [row | {"breakdown": split.get(row["feature_id"], [])} for row in rows]
            if self.wants_csv():
                self.csv_columns = ("feature_key", "key", "events")
                return self.csv_response(
                    [
                        {"feature_key": row["feature_key"], "key": part["key"], "events": part["value"]}
                        for row in rows
                        for part in row["breakdown"]
                    ]
                )
        if self.wants_csv():
            return self.csv_response(rows)
        body = {"start": args["start"], "end": args["end"], "count": len(rows), "results": rows}
        if breakdown:
            notes = _breakdown_notes(self.org, breakdown, args["start"], args["end"], args["filters"])
            body |= {"breakdown": breakdown, **notes}
        return Response(body)


class UserActivityView(CSVExportMixin, AnalyticsView):
    """Analysts see every end user; a member sees only the end users linked to their account."""

    roles = {"GET": Role.MEMBER}
    csv_name = "user-activity"
    csv_columns = exports.USER_ACTIVITY_COLUMNS

    @strict_schema(
        summary="Per end user activity (members: their own)",
        parameters=[
            int_query("days", minimum=1, maximum=MAX_RANGE_DAYS, description="look-back in days (default 30)"),
            OpenApiParameter("search", OpenApiTypes.STR, description="external id or e-mail contains"),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(params.USER_SORTS)),
            *pagination_parameters(),
            *_date_params(default_note="the last `days` days"),
            *FILTER_PARAMS,
            FORMAT_PARAM,
        ],
        responses={200: schema.UserActivity, 400: BAD_INPUT},
    )
    def get(self, request):
        args = params.user_activity_params(self.org, request.query_params)
        user = request.user
        only_member = None if (user.is_superuser or user.has_role(Role.ANALYST)) else user
        if self.wants_csv():
            args["page_size"] = None  # the download holds every row, not one page
        data = queries.user_activity_page(self.org, only_member=only_member, **args)
        if self.wants_csv():
            return self.csv_response(data["results"])
        return Response(page_body(request, data["page"], data["page_size"], data["count"], data["results"]))


class TimeseriesView(CSVExportMixin, AnalyticsView):
    csv_name = "timeseries"
    csv_columns = ("date", "value")

    @strict_schema(
        summary="A metric per day or week, zero-filled",
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, enum=list(params.METRICS)),
            OpenApiParameter("interval", OpenApiTypes.STR, enum=list(params.INTERVALS)),
            *FILTER_PARAMS,
            BREAKDOWN_PARAM,
            *_date_params(),
            FORMAT_PARAM,
        ],
        responses={200: schema.Timeseries, 400: BAD_INPUT},
    )
    def get(self, request):
        args = params.timeseries_params(self.org, request.query_params)
        breakdown = params.breakdown_param(request.query_params)
        if breakdown:
            return self._breakdown(args, breakdown)
        data = queries.timeseries(self.org, **args)
        if self.wants_csv():
            return self.csv_response(data["points"])
        feature = args["feature"]
        data["feature"] = {"id": feature.pk, "key": feature.key} if feature else None
        return Response(data)

    def _breakdown(self, args, breakdown):
        """`{metric, interval, start, end, breakdown, series: [{key, points}]}`, and
        `anonymous_events` for a person dimension."""
        filters = {k: args[k] for k in ("feature", "age", "gender", "account", "user_properties") if args[k]}
        series = queries.breakdown_series(
            self.org,
            dimension=breakdown,
            start=args["start"],
            end=args["end"],
            interval=args["interval"],
            metric=args["metric"],
            filters=filters,
        )
        if self.wants_csv():
            self.csv_columns = ("date", "key", "value")
            return self.csv_response(
                [{"date": p["date"], "key": s["key"], "value": p["value"]} for s in series for p in s["points"]]
            )
        head = {k: args[k] for k in ("metric", "interval", "start", "end")}
        notes = _breakdown_notes(self.org, breakdown, args["start"], args["end"], filters)
        return Response(head | {"breakdown": breakdown, "series": series, **notes})


class RetentionView(AnalyticsView):
    @strict_schema(
        summary="Weekly cohorts by first-seen week: D1/D7/D30 and the cohort grid",
        parameters=[
            int_query(
                "weeks", minimum=1, maximum=params.MAX_RETENTION_WEEKS, description="number of cohorts (default 12)"
            ),
            OpenApiParameter("start", OpenApiTypes.DATE, description="cohorts from this day's week (instead of weeks)"),
            OpenApiParameter("end", OpenApiTypes.DATE, description="last day (default today)"),
            *FILTER_PARAMS,
        ],
        responses={200: schema.Retention, 400: BAD_INPUT},
    )
    def get(self, request):
        return Response(queries.retention(self.org, **params.retention_params(self.org, request.query_params)))


class TopUsersView(AnalyticsView):
    @strict_schema(
        summary="Most active end users",
        parameters=[
            int_query("limit", minimum=1, maximum=MAX_PAGE_SIZE, description="default 10"),
            *_date_params(),
            *FILTER_PARAMS,
        ],
        responses={200: schema.TopUsers, 400: BAD_INPUT},
    )
    def get(self, request):
        args = params.top_users_params(self.org, request.query_params)
        rows = queries.top_users(self.org, **args)
        return Response({"start": args["start"], "end": args["end"], "count": len(rows), "results": rows})


class FunnelView(AnalyticsView):
    @strict_schema(
        summary="Ordered conversion funnel per end user",
        parameters=[
            OpenApiParameter(
                "steps",
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": params.MIN_FUNNEL_STEPS,
                    "maxItems": params.MAX_FUNNEL_STEPS,
                },
                required=True,
                style="form",
                explode=False,
                description="2–10 steps, comma-separated: each a feature's key (or its id or name), or an event type "
                "some end user has sent; a step naming neither is a 400",
            ),
            int_query("window_days", minimum=1, maximum=90, description="conversion window (default 7)"),
            *_date_params(),
            *PERSON_FILTER_PARAMS,
        ],
        responses={200: schema.Funnel, 400: BAD_INPUT},
    )
    def get(self, request):
        return Response(queries.funnel(self.org, **params.funnel_params(self.org, request.query_params)))


class EndUserDetailView(AnalyticsView):
    @strict_schema(
        summary="One end user: profile, totals, timeline grouped by session",
        description=(
            "The timeline holds the newest 200 events; `timeline_next` pages on to older ones "
            "(`?before=<timeline_next>`), and `totals.events` says how many there are in all."
        ),
        parameters=[
            OpenApiParameter("before", OpenApiTypes.UUID, description="the timeline's events older than this event")
        ],
        responses={200: schema.EndUserDetail, 400: BAD_INPUT, 404: BAD_INPUT},
    )
    def get(self, request, external_id):
        return Response(queries.end_user_detail(self.org, external_id, **params.end_user_params(request.query_params)))


# aggregate/run takes its days in the query or as body fields.
AGGREGATE_FIELDS = ("date", "since", "until")


class AggregateRunView(AnalyticsView):
    roles = {"POST": Role.ADMIN}

    @strict_schema(
        summary="Recompute the rollups of a day or range now (admin)",
        description="Then queues the anomaly detection and alert rules for those days, as a scheduled rollup does "
        "(a worker runs them; the answer does not wait).",
        parameters=[
            OpenApiParameter("date", OpenApiTypes.DATE, description="one UTC day (default yesterday)"),
            OpenApiParameter("since", OpenApiTypes.DATE),
            OpenApiParameter("until", OpenApiTypes.DATE),
        ],
        request=None,
        responses={200: schema.AggregateRun, 400: BAD_INPUT, 403: BAD_INPUT},
    )
    def post(self, request):
        query = request.query_params.copy()
        if not isinstance(request.data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": ["The body must be a JSON object (date, since, until) or empty."]}
            )
        body_check(request.data, AGGREGATE_FIELDS)
        if isinstance(request.data, dict):
            for name in AGGREGATE_FIELDS:
                if name in request.data and name not in query:
                    query[name] = str(request.data[name])
        args = params.aggregate_params(query)
        written = rollup.rollup_range(args["since"], args["until"], self.org)
        # Anomalies and alert rules are judged by a worker, as after a scheduled rollup.
        handover.insights_notify_range(args["since"], args["until"], self.org)
        return Response({"aggregated": written, "since": args["since"], "until": args["until"]})
