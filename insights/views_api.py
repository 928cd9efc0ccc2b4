"""Insights API: anomalies, narrative, chart data, forecasts and webhooks. Thin views:
parse, call one service, serialize."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from core.api import int_query, list_schema, validated
from core.db_routing import ReplicaReadsMixin
from core.openapi import ERROR
from core.pagination import paginate, paginated_schema, pagination_parameters
from core.strict_query import strict_schema
from tenants.crud import OrgCollectionView, OrgItemView
from tenants.models import Role
from tenants.permissions import OrgAPIView

from . import narrative, params, services, webhooks
from .explain import explanation_phrase
from .forecast import usage_prediction
from .models import Anomaly, Webhook

TAGS = ["insights"]


# --- Serializers ----------------------------------------------------------------------------


class SegmentSerializer(serializers.Serializer):
    dimension = serializers.CharField(
        help_text="event_type, age, gender, account, feature, user.<property> or event.<property>"
    )
    value = serializers.CharField(help_text="The segment's value ('(none)' when unset)")
    label = serializers.CharField(help_text="How pages and digests name it, e.g. 'event type export'")
    share_of_change = serializers.FloatField(help_text="Its part of the change (the shares of a dimension add up to 1)")
    usual_share = serializers.FloatField(help_text="Its part of the usage on the baseline days")
    value_on_day = serializers.FloatField(help_text="The segment's value on the anomaly's day")
    expected = serializers.FloatField(help_text="What the segment would have been with its usual share")


class ExplanationSerializer(serializers.Serializer):
    summary = serializers.CharField(help_text="One line, as on the Insights page and in the narrative")
    segment = SegmentSerializer(allow_null=True, help_text="The segment most out of proportion to its usual share")
    concentrated = serializers.BooleanField(
        help_text="True when that segment carries at least half of the change and the rest of the usage moved "
        "at most half as much as the whole"
    )
    segments = SegmentSerializer(many=True, help_text="The best few segments, best first")
    day = serializers.DateField()
    baseline_days = serializers.ListField(child=serializers.DateField(), help_text="The days the day was compared with")
    dimensions = serializers.ListField(child=serializers.CharField(), help_text="The dimensions looked at")


class AnomalySerializer(serializers.ModelSerializer):
    feature_key = serializers.SerializerMethodField()
    feature_name = serializers.SerializerMethodField()
    explanation = serializers.SerializerMethodField()

    class Meta:
        model = Anomaly
        fields = [
            "id",
            "date",
            "feature_id",
            "feature_key",
            "feature_name",
            "detector",
            "metric",
            "value",
            "expected",
            "score",
            "severity",
            "status",
            "details",
            "explanation",
            "notified_at",
            "created_at",
            "updated_at",
        ]

    def get_feature_key(self, obj) -> str | None:
        return obj.feature.key if obj.feature_id else None

    def get_feature_name(self, obj) -> str | None:
        return (obj.feature.name or obj.feature.key) if obj.feature_id else None

    @extend_schema_field(ExplanationSerializer(allow_null=True))
    def get_explanation(self, obj):
        """Time-series anomalies once explained (the detection run does it); null before."""
        if not obj.explanation:
            return None
        return {**obj.explanation, "summary": explanation_phrase(obj.explanation) or ""}


class AnomalyStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Anomaly.Status.choices)


class InsightSerializer(serializers.Serializer):
    source = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    bullets = serializers.ListField(child=serializers.CharField())
    summary = serializers.CharField(allow_blank=True)
    generated_at = serializers.DateTimeField()
    open_anomalies = serializers.IntegerField(
        help_text="Open anomalies the bullets were written with: the same count as GET /anomalies?status=open"
    )
    period_start = serializers.DateField()
    period_end = serializers.DateField()


class OutlierMetrics(serializers.Serializer):
    # Declared once and instantiated per use (analytics.schema.BreakdownPart says why).
    event_count = serializers.FloatField()
    avg_session_duration = serializers.FloatField()
    daily_active_users = serializers.FloatField()


ChartDataSerializer = inline_serializer(
    name="ChartData",
    fields={
        "start": serializers.DateField(),
        "end": serializers.DateField(),
        "metrics": serializers.ListField(child=serializers.CharField()),
        "threshold": serializers.FloatField(allow_null=True),
        "features": inline_serializer(
            name="ChartFeature",
            many=True,
            fields={
                "feature_id": serializers.IntegerField(),
                "feature_key": serializers.CharField(),
                "feature_name": serializers.CharField(),
                "metrics": OutlierMetrics(),
                "z_scores": OutlierMetrics(),
                "norm": serializers.FloatField(),
                "outlier": serializers.BooleanField(),
            },
        ),
        "histogram": inline_serializer(
            name="ChartBucket",
            many=True,
            fields={
                "lower": serializers.FloatField(),
                "upper": serializers.FloatField(),
                "count": serializers.IntegerField(),
            },
        ),
    },
)

PredictionSerializer = inline_serializer(
    name="UsagePrediction",
    fields={
        "days": serializers.IntegerField(),
        "features": inline_serializer(
            name="FeaturePrediction",
            many=True,
            fields={
                "feature_id": serializers.IntegerField(),
                "feature_key": serializers.CharField(),
                "points": inline_serializer(
                    name="PredictionPoint",
                    many=True,
                    fields={
                        "date": serializers.DateField(),
                        "value": serializers.FloatField(),
                        "lower": serializers.FloatField(),
                        "upper": serializers.FloatField(),
                    },
                ),
            },
        ),
    },
)


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "format", "active", "created_at"]


class WebhookCreatedSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "format", "active", "created_at", "secret"]


class WebhookInputSerializer(serializers.Serializer):
    # URLField would reject hosts such as `localhost` before the service can explain why;
    # the service validates the URL (scheme, host, addresses).
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Webhook.Event.values), allow_empty=False, min_length=1
    )
    format = serializers.ChoiceField(
        choices=Webhook.Format.choices,
        default=Webhook.Format.SIGNED_JSON,
        help_text='"json": the signed envelope; "slack": a Slack incoming-webhook message ({"text", "blocks"})',
    )
    active = serializers.BooleanField(default=True)


class WebhookUpdateSerializer(WebhookInputSerializer):
    url = serializers.CharField(max_length=500, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Webhook.Event.values), allow_empty=False, required=False
    )
    format = serializers.ChoiceField(choices=Webhook.Format.choices, required=False)
    active = serializers.BooleanField(required=False)


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField()
    payload = serializers.JSONField()
    attempt = serializers.IntegerField()
    delivery_id = serializers.CharField(allow_blank=True, help_text="the X-Delivery header, the same on every attempt")
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="a queued attempt: when it is due; a failed one: when the next attempt is"
    )
    attempted_at = serializers.DateTimeField(allow_null=True, help_text="null: queued, not made yet")
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def _dates(*names):
    return [OpenApiParameter(name, OpenApiTypes.DATE, description=desc) for name, desc in names]


# --- Views ---------------------------------------------------------------------------------
# The figures' GETs read from the replica when there is one (ReplicaReadsMixin); the webhook
# settings below stay on the primary: an admin reads them right after changing them.


class AnomalyListView(ReplicaReadsMixin, OrgAPIView):
    default_role = Role.ANALYST

    @strict_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Anomaly.Status.values),
            OpenApiParameter("severity", OpenApiTypes.STR, enum=Anomaly.Severity.values),
            OpenApiParameter(
                "detector",
                OpenApiTypes.STR,
                enum=list(params.DETECTORS),
                default=params.DEFAULT_DETECTOR,
                description="timeseries (default): the anomalies, with `explanation`; outlier_features: the "
                "'Unusual features' ranking (never alerted)",
            ),
            *_dates(("start", "First day (inclusive)"), ("end", "Last day (inclusive)")),
            *pagination_parameters(),
        ],
        responses={200: paginated_schema(AnomalySerializer), 400: ERROR, 403: ERROR},
        operation_id="ai_anomalies_list",
        summary="Anomalies with feature names, scores, details and the segment that explains them",
        tags=TAGS,
    )
    def get(self, request):
        rows = services.anomalies_list(self.org, **params.anomaly_list_params(request.query_params))
        return paginate(request, rows, AnomalySerializer, view=self)


class AnomalyDetailView(ReplicaReadsMixin, OrgAPIView):
    roles = {"GET": Role.ANALYST, "PATCH": Role.ADMIN}

    @strict_schema(responses={200: AnomalySerializer, 404: ERROR}, summary="One anomaly", tags=TAGS)
    def get(self, request, anomaly_id):
        return Response(AnomalySerializer(services.anomaly_get(self.org, anomaly_id)).data)

    @strict_schema(
        request=AnomalyStatusSerializer,
        responses={200: AnomalySerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        summary="Acknowledge, resolve or reopen an anomaly",
        tags=TAGS,
    )
    def patch(self, request, anomaly_id):
        services.anomaly_get(self.org, anomaly_id)  # another organisation's: 404 whatever the body
        data = validated(AnomalyStatusSerializer, request)
        anomaly = services.anomaly_set_status(self.org, anomaly_id, data["status"], user=request.user)
        return Response(AnomalySerializer(anomaly).data)


class UsageInsightsView(ReplicaReadsMixin, OrgAPIView):
    default_role = Role.ANALYST

    @strict_schema(
        parameters=[OpenApiParameter("refresh", OpenApiTypes.BOOL, description="Regenerate now (admins only)")],
        responses={200: InsightSerializer, 403: ERROR},
        summary="Plain-language insights (Gemini, or heuristics when it is unavailable)",
        tags=TAGS,
    )
    def get(self, request):
        refresh = params.insight_params(request.query_params)["refresh"] and request.user.has_role(Role.ADMIN)
        insight = narrative.insight_current(self.org, refresh=refresh)
        return Response(narrative.insight_payload(insight))


class ChartDataView(ReplicaReadsMixin, OrgAPIView):
    default_role = Role.ANALYST

    @strict_schema(
        parameters=_dates(("start", "default 30 days before end"), ("end", "default yesterday")),
        responses={200: ChartDataSerializer, 400: ERROR, 403: ERROR},
        summary="Per-feature metrics, z-scores, norm histogram and outlier threshold",
        tags=TAGS,
    )
    def get(self, request):
        return Response(services.chart_data(self.org, **params.chart_params(request.query_params)))


class UsagePredictionView(ReplicaReadsMixin, OrgAPIView):
    default_role = Role.ANALYST

    @strict_schema(
        parameters=[
            int_query(
                "days",
                minimum=params.PREDICTION_MIN_DAYS,
                maximum=params.PREDICTION_MAX_DAYS,
                description="Horizon (default 14)",
            ),
            OpenApiParameter("feature", OpenApiTypes.STR, description="Only this feature (id, key or name)"),
        ],
        responses={200: PredictionSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        summary="Daily events per feature for the next days, with an 80 % interval",
        tags=TAGS,
    )
    def get(self, request):
        return Response(usage_prediction(self.org, **params.prediction_params(request.query_params)))


@extend_schema_view(
    get=list_schema(
        WebhookSerializer,
        operation_id="org_webhooks_list",
        summary="Webhooks (secrets are never listed)",
        tags=["webhooks"],
    ),
    post=extend_schema(
        request=WebhookInputSerializer,
        responses={201: WebhookCreatedSerializer, 400: ERROR, 403: ERROR},
        summary="Create a webhook; its signing secret is shown only in this response",
        tags=["webhooks"],
    ),
)
class WebhookListView(OrgCollectionView):
    output_serializer = WebhookSerializer
    input_serializer = WebhookInputSerializer
    created_serializer = WebhookCreatedSerializer

    def rows(self, org):
        return webhooks.webhook_list(org)

    def create(self, org, request, data):
        return webhooks.webhook_create(
            org, url=data["url"], events=data["events"], active=data["active"], format=data["format"]
        )


@extend_schema_view(
    get=extend_schema(responses={200: WebhookSerializer, 404: ERROR}, summary="One webhook", tags=["webhooks"]),
    patch=extend_schema(
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        summary="Change a webhook's URL, events or active flag",
        tags=["webhooks"],
    ),
    delete=extend_schema(responses={204: None, 403: ERROR, 404: ERROR}, summary="Delete a webhook", tags=["webhooks"]),
)
class WebhookDetailView(OrgItemView):
    lookup = "webhook_id"
    output_serializer = WebhookSerializer
    update_serializer = WebhookUpdateSerializer

    def item(self, org, pk):
        return webhooks.webhook_get(org, pk)

    def update(self, org, pk, data):
        return webhooks.webhook_update(org, pk, **data)

    def remove(self, org, pk):
        webhooks.webhook_delete(org, pk)


class WebhookDeliveryListView(OrgAPIView):
    default_role = Role.ADMIN

    @list_schema(
        WebhookDeliverySerializer,
        errors=(403, 404),
        operation_id="org_webhooks_deliveries_list",
        summary="Delivery attempts of a webhook, newest first",
        tags=["webhooks"],
    )
    def get(self, request, webhook_id):
        return paginate(
            request, webhooks.webhook_deliveries(self.org, webhook_id), WebhookDeliverySerializer, view=self
        )
