"""The bodies the analytics API answers, for the OpenAPI schema only: `analytics.queries`
builds them as plain dicts, and these declarations say what is in them (the schemathesis run
in CI checks every answer against them)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from . import params

_AVERAGE_NULL = "null only for an average session with nothing to average (no event with a duration)"


class BreakdownPart(serializers.Serializer):
    # Declared once and instantiated per use: one field instance used under several names
    # documents only the last of them.
    key = serializers.CharField(help_text='a value of the dimension, "(none)" where missing, or "other"')
    value = serializers.FloatField(allow_null=True, help_text=_AVERAGE_NULL)


_BREAKDOWN_HELP = 'with ?breakdown=: the top 10 values then "other"'


def _anonymous_events() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        help_text=(
            "with ?breakdown= by a person dimension (age, gender, account, user.<property>): the events of "
            "the range and filters sent without an end user, which are in no value of it"
        ),
    )


def _raw_events_from() -> serializers.DateField:
    return serializers.DateField(
        required=False,
        help_text=(
            "with ?breakdown= by event_type or event.<property>, when the range starts before the first day "
            "whose raw events are kept (RAW_EVENT_RETENTION_MONTHS): that day. The figures this breakdown reads "
            "from raw events (distinct users over the range or per week; any figure under an account or "
            "user-property filter) count from it"
        ),
    )


class Kpi(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="null only for an average with nothing to average")
    previous = serializers.FloatField(allow_null=True)
    change_pct = serializers.FloatField(allow_null=True, help_text="null when previous is 0")


UsageSummary = inline_serializer(
    name="UsageSummary",
    fields={
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "previous_start": serializers.DateField(),
        "previous_end": serializers.DateField(),
        "total_events": Kpi(),
        "active_users": Kpi(),
        "features_tracked": Kpi(),
        "sessions": Kpi(),
        "avg_session_duration": Kpi(),
        "breakdown": inline_serializer(
            name="UsageSummaryBreakdown",
            required=False,
            help_text=_BREAKDOWN_HELP,
            fields={
                "by": serializers.CharField(),
                "events": BreakdownPart(many=True),
                "active_users": BreakdownPart(many=True),
                "anonymous_events": _anonymous_events(),
                "raw_events_from": _raw_events_from(),
            },
        ),
    },
)

FeatureUsage = inline_serializer(
    name="FeatureUsage",
    fields={
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "count": serializers.IntegerField(),
        "results": inline_serializer(
            name="FeatureUsageRow",
            many=True,
            fields={
                "feature_id": serializers.IntegerField(),
                "feature_key": serializers.CharField(),
                "feature_name": serializers.CharField(),
                "events": serializers.IntegerField(),
                "avg_daily_active_users": serializers.FloatField(),
                "avg_session_duration": serializers.FloatField(allow_null=True, help_text="null without any duration"),
                "share": serializers.FloatField(help_text="% of all events"),
                "previous_events": serializers.IntegerField(),
                "change_pct": serializers.FloatField(allow_null=True),
                "stickiness_pct": serializers.FloatField(
                    allow_null=True, help_text="DAU/MAU: average daily active users ÷ distinct users over the range, %"
                ),
                "breakdown": inline_serializer(
                    name="FeatureUsageBreakdownPart",
                    many=True,
                    required=False,
                    help_text=f"{_BREAKDOWN_HELP}: this feature's events per value",
                    fields={"key": serializers.CharField(), "value": serializers.FloatField()},
                ),
            },
        ),
        "breakdown": serializers.CharField(required=False, help_text="the dimension, with ?breakdown="),
        "anonymous_events": _anonymous_events(),
        "raw_events_from": _raw_events_from(),
    },
)


class EndUserActivitySerializer(serializers.Serializer):
    user_id = serializers.CharField(help_text="your end user's external id")
    email = serializers.CharField()
    events = serializers.IntegerField()
    avg_session_duration = serializers.FloatField(allow_null=True, help_text="null without any duration")
    first_seen = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)
    top_feature = serializers.CharField(allow_null=True)


UserActivity = inline_serializer(
    name="UserActivityPage",
    fields={
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": EndUserActivitySerializer(many=True),
    },
)

TopUsers = inline_serializer(
    name="TopUsers",
    fields={
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "count": serializers.IntegerField(),
        "results": EndUserActivitySerializer(many=True),
    },
)

Timeseries = inline_serializer(
    name="Timeseries",
    fields={
        "metric": serializers.ChoiceField(choices=params.METRICS),
        "interval": serializers.ChoiceField(choices=params.INTERVALS),
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "points": inline_serializer(
            name="TimeseriesPoint",
            many=True,
            required=False,
            help_text="without ?breakdown=",
            fields={
                "date": serializers.DateField(
                    help_text="the day, or the week's Monday (a first week cut by start: start itself)"
                ),
                "value": serializers.FloatField(allow_null=True, help_text=_AVERAGE_NULL),
            },
        ),
        "feature": inline_serializer(
            name="TimeseriesFeature",
            allow_null=True,
            required=False,
            help_text="without ?breakdown=",
            fields={"id": serializers.IntegerField(), "key": serializers.CharField()},
        ),
        "breakdown": serializers.CharField(required=False, help_text="the dimension, with ?breakdown="),
        "series": inline_serializer(
            name="TimeseriesBreakdownSeries",
            many=True,
            required=False,
            help_text=f"{_BREAKDOWN_HELP}, each with its points",
            fields={
                "key": serializers.CharField(),
                "points": inline_serializer(
                    name="TimeseriesBreakdownPoint",
                    many=True,
                    fields={
                        "date": serializers.DateField(),
                        "value": serializers.FloatField(allow_null=True, help_text=_AVERAGE_NULL),
                    },
                ),
            },
        ),
        "anonymous_events": _anonymous_events(),
        "raw_events_from": _raw_events_from(),
    },
)

Retention = inline_serializer(
    name="Retention",
    fields={
        "weeks": serializers.IntegerField(),
        "end": serializers.DateField(),
        "cohorts": inline_serializer(
            name="RetentionCohort",
            many=True,
            fields={
                "cohort_start": serializers.DateField(),
                "size": serializers.IntegerField(),
                "d1": serializers.FloatField(
                    allow_null=True, help_text="null until day 1 has passed, and for an empty cohort"
                ),
                "d7": serializers.FloatField(allow_null=True),
                "d30": serializers.FloatField(allow_null=True),
                "weeks": serializers.ListField(
                    child=serializers.FloatField(allow_null=True),
                    help_text="% active in week k; null for an empty cohort",
                ),
            },
        ),
    },
)

Funnel = inline_serializer(
    name="Funnel",
    fields={
        "window_days": serializers.IntegerField(),
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "steps": inline_serializer(
            name="FunnelStep",
            many=True,
            fields={
                "step": serializers.IntegerField(),
                "key": serializers.CharField(),
                "kind": serializers.ChoiceField(choices=["feature", "event_type"]),
                "users": serializers.IntegerField(),
                "conversion_from_prev": serializers.FloatField(
                    allow_null=True, help_text="% of the previous step's users (100 on step 1); null when it had none"
                ),
                "conversion_from_start": serializers.FloatField(
                    allow_null=True, help_text="% of the users who entered; null when nobody entered"
                ),
            },
        ),
    },
)

EndUserDetail = inline_serializer(
    name="EndUserDetail",
    fields={
        "user_id": serializers.CharField(),
        "email": serializers.CharField(),
        "age": serializers.IntegerField(allow_null=True),
        "gender": serializers.CharField(),
        "properties": serializers.DictField(),
        "first_seen": serializers.DateTimeField(allow_null=True),
        "last_seen": serializers.DateTimeField(allow_null=True),
        "totals": inline_serializer(
            name="EndUserTotals",
            fields={
                "events": serializers.IntegerField(),
                "sessions": serializers.IntegerField(),
                "avg_session_duration": serializers.FloatField(allow_null=True, help_text="null without any duration"),
                "features_used": serializers.IntegerField(),
            },
        ),
        "top_features": inline_serializer(
            name="EndUserTopFeature",
            many=True,
            fields={
                "feature_id": serializers.IntegerField(),
                "feature_key": serializers.CharField(),
                "feature_name": serializers.CharField(),
                "events": serializers.IntegerField(),
            },
        ),
        "timeline": inline_serializer(
            name="EndUserVisit",
            many=True,
            fields={
                "session_id": serializers.CharField(help_text="empty for events sent without one"),
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
                "event_count": serializers.IntegerField(),
                "continued": serializers.BooleanField(help_text="this session began on the previous (newer) page"),
                "events": inline_serializer(
                    name="EndUserEvent",
                    many=True,
                    fields={
                        "uuid": serializers.UUIDField(),
                        "timestamp": serializers.DateTimeField(),
                        "feature_key": serializers.CharField(),
                        "feature_name": serializers.CharField(),
                        "event_type": serializers.CharField(),
                        "session_duration": serializers.FloatField(allow_null=True),
                    },
                ),
            },
        ),
        "timeline_events": serializers.IntegerField(help_text="events on this page of the timeline (at most 200)"),
        "timeline_next": serializers.UUIDField(
            allow_null=True, help_text="pass as `before` for the next, older page; null on the oldest"
        ),
    },
)

AggregateRun = inline_serializer(
    name="AggregateRun",
    fields={
        "aggregated": serializers.IntegerField(help_text="rollup rows written"),
        "since": serializers.DateField(),
        "until": serializers.DateField(),
    },
)


_ACCOUNT_ROW_FIELDS = {
    "account_id": serializers.CharField(help_text="the tenant's own id of the account"),
    "name": serializers.CharField(),
    "active_users": serializers.IntegerField(help_text="distinct end users active in the recent 4 weeks"),
    "events": serializers.IntegerField(help_text="events in the recent 4 weeks"),
    "previous_events": serializers.IntegerField(help_text="events in the 4 weeks before"),
    "features_used": serializers.IntegerField(),
    "trend_pct": serializers.FloatField(allow_null=True, help_text="null when the 4 weeks before had no events"),
    "at_risk": serializers.BooleanField(help_text="events down 30 % or more against the 4 weeks before"),
    "last_seen": serializers.DateTimeField(allow_null=True),
}

AccountList = inline_serializer(
    name="AccountList",
    fields={
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": inline_serializer(
            name="AccountRow",
            many=True,
            fields={
                **_ACCOUNT_ROW_FIELDS,
                "feature_events": serializers.IntegerField(
                    allow_null=True, help_text="with `feature`: that feature's events in the recent 4 weeks; else null"
                ),
            },
        ),
    },
)

_FEATURE_REF = {
    "feature_id": serializers.IntegerField(),
    "feature_key": serializers.CharField(),
    "feature_name": serializers.CharField(),
}

AccountDetail = inline_serializer(
    name="AccountDetail",
    fields={
        **_ACCOUNT_ROW_FIELDS,
        "properties": serializers.DictField(),
        "created_at": serializers.DateTimeField(),
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "users": inline_serializer(
            name="AccountUser",
            many=True,
            fields={
                "user_id": serializers.CharField(),
                "email": serializers.CharField(),
                "events": serializers.IntegerField(),
                "last_seen": serializers.DateTimeField(),
            },
        ),
        "features_adopted": inline_serializer(
            name="AccountFeatureAdopted",
            many=True,
            fields={**_FEATURE_REF, "events": serializers.IntegerField(), "users": serializers.IntegerField()},
        ),
        "features_not_adopted": inline_serializer(name="AccountFeatureNotAdopted", many=True, fields=_FEATURE_REF),
        "weekly": inline_serializer(
            name="AccountWeek",
            many=True,
            fields={
                "week_start": serializers.DateField(),
                "events": serializers.IntegerField(),
                "active_users": serializers.IntegerField(),
            },
        ),
    },
)
