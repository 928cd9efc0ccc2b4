"""/api/v1/org/alert-rules: the organisation's alert rules and their firings (admins).
Thin views: validate the body's shape, call one `rules` function, serialize."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from core.api import ERROR, list_schema
from core.exceptions import DomainError
from core.pagination import paginate
from tenants.crud import OrgCollectionView, OrgItemView
from tenants.models import Role
from tenants.permissions import OrgAPIView

from ..models import AlertFiring, AlertRule
from . import rules

TAGS = ["alert rules"]
PARAMS_HELP = (
    'metric_threshold: {"metric": "events"|"active_users"|"sessions"|"avg_session_duration", '
    '"op": "above"|"below", "value": number, "feature"?: id, key or name (stored as its key)}; '
    'funnel_conversion: {"steps": [key…], "step"?: n, "below": % | "drop_pct": %, "window_days"?: 1–90}; '
    'retention: {"day": 1|7|30, "below": %}'
)
PATCH_PARAMS = (
    "PATCH replaces params as a whole (it is checked like a new rule's): send every param of the kind, "
    "not only the one to change."
)


class AlertFiringSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertFiring
        fields = [
            "id",
            "rule_id",
            "day",
            "window_start",
            "value",
            "threshold",
            "message",
            "details",
            "delivery_status",
            "delivery",
            "fired_at",
            "notified_at",
        ]


class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "kind",
            "params",
            "active",
            "last_evaluated_at",
            "last_error",
            "last_error_at",
            "created_at",
            "updated_at",
        ]


class AlertRuleInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=rules.NAME_MAX)
    kind = serializers.ChoiceField(choices=AlertRule.Kind.choices)
    params = serializers.DictField(help_text=PARAMS_HELP)
    active = serializers.BooleanField(default=True)


class AlertRuleUpdateSerializer(AlertRuleInputSerializer):
    name = serializers.CharField(max_length=rules.NAME_MAX, required=False)
    kind = serializers.ChoiceField(choices=AlertRule.Kind.choices, required=False)
    params = serializers.DictField(help_text=f"{PARAMS_HELP}. {PATCH_PARAMS}", required=False)
    active = serializers.BooleanField(required=False)


@extend_schema_view(
    get=list_schema(AlertRuleSerializer, operation_id="org_alert_rules_list", summary="Alert rules", tags=TAGS),
    post=extend_schema(
        request=AlertRuleInputSerializer,
        responses={201: AlertRuleSerializer, 400: ERROR, 403: ERROR},
        summary="Create an alert rule (checked after each rollup)",
        description=f"params by kind — {PARAMS_HELP}. Unknown body fields are a 400 naming them.",
        tags=TAGS,
    ),
)
class AlertRuleListView(OrgCollectionView):
    output_serializer = AlertRuleSerializer
    input_serializer = AlertRuleInputSerializer

    def rows(self, org):
        return rules.alert_rule_list(org)

    def create(self, org, request, data):
        return rules.alert_rule_create(org, user=request.user, **data)


@extend_schema_view(
    get=extend_schema(
        responses={200: AlertRuleSerializer, 403: ERROR, 404: ERROR}, summary="One alert rule", tags=TAGS
    ),
    patch=extend_schema(
        request=AlertRuleUpdateSerializer,
        responses={200: AlertRuleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        summary="Change an alert rule's name, kind, params or active flag",
        description=f"params by kind — {PARAMS_HELP}. {PATCH_PARAMS} Unknown body fields are a 400 naming them.",
        tags=TAGS,
    ),
    delete=extend_schema(responses={204: None, 403: ERROR, 404: ERROR}, summary="Delete an alert rule", tags=TAGS),
)
class AlertRuleDetailView(OrgItemView):
    lookup = "rule_id"
    output_serializer = AlertRuleSerializer
    update_serializer = AlertRuleUpdateSerializer

    def item(self, org, pk):
        return rules.alert_rule_get(org, pk)

    def update(self, org, pk, data):
        try:
            return rules.alert_rule_update(org, pk, **data)
        except DomainError as exc:
            if "params" not in data or not any(k.startswith("params") for k in exc.errors):
                raise
            errors = {k: [*v, PATCH_PARAMS] if k.startswith("params") else v for k, v in exc.errors.items()}
            raise DomainError(f"{exc.detail} {PATCH_PARAMS}", errors=errors) from exc

    def remove(self, org, pk):
        rules.alert_rule_delete(org, pk)


class AlertFiringListView(OrgAPIView):
    default_role = Role.ADMIN

    @list_schema(
        AlertFiringSerializer,
        errors=(403, 404),
        operation_id="org_alert_rules_firings_list",
        summary="A rule's firings, newest first",
        tags=TAGS,
    )
    def get(self, request, rule_id):
        return paginate(request, rules.alert_firings(self.org, rule_id), AlertFiringSerializer, view=self)
