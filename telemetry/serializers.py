"""Request/response shapes of the ingestion API, for the OpenAPI schema only: the
endpoints validate with `services.ingest` (one pass, per-item errors), not with these."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def _schema_only(schema, help_text=""):
    """A field that documents `schema` as it is: `services.ingest` reads these values more
    loosely than a serializer field type can say (ids as numbers or digits, null as absent)."""

    @extend_schema_field(schema)
    class Field(serializers.JSONField):
        pass

    return Field(required=False, help_text=help_text)


def _nullable(*types, **constraints):
    return {"oneOf": [{"type": t, **constraints.get(t, {})} for t in types], "nullable": True}


class EventIn(serializers.Serializer):
    """One event as `services.ingest` validates it: every field is optional, and null (or an
    empty string for the text fields) means "not given". A field not listed here is refused
    (400 naming it): free-form data goes in `metadata`."""

    closed = True  # core.openapi: additionalProperties false

    uuid = serializers.UUIDField(
        required=False, allow_null=True, help_text="Idempotency key: an event is stored once per uuid."
    )
    feature_id = _schema_only(
        _nullable(
            "integer", "string", integer={"minimum": 1, "maximum": 2**63 - 1}, string={"pattern": "^[0-9]{1,19}$"}
        ),
        "Your feature's id (a number, or its digits); takes precedence over `feature`.",
    )
    feature = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=200,
        help_text="Feature key or name (created if the organisation allows it).",
    )
    user_id = _schema_only(
        _nullable("string", "integer", string={"minLength": 1, "maxLength": 200}),
        "Your end user's id (omit for anonymous events).",
    )
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    age = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=150)
    gender = _schema_only(
        {"type": "string", "pattern": "^([FfMmOo]|[Ff]emale|[Mm]ale|[Oo]ther|FEMALE|MALE|OTHER)?$", "nullable": True},
        "F, M or O (also female, male, other).",
    )
    properties = serializers.DictField(
        required=False, allow_null=True, help_text="End-user properties, merged (≤ 16 KB)."
    )
    event_type = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=64, help_text="Default `interaction`."
    )
    session_id = _schema_only(_nullable("string", "integer", string={"maxLength": 128}))
    session_duration = serializers.FloatField(required=False, allow_null=True, min_value=0)
    timestamp = _schema_only(
        _nullable("string", "number"),
        "ISO 8601 date-time (UTC when it has no offset) or epoch seconds (or milliseconds); default now, "
        "at most 24 h in the future, not before 1970.",
    )
    account_id = _schema_only(
        _nullable("string", "integer", string={"minLength": 1, "maxLength": 200}),
        "Your id of the end user's account (the customer company); needs `user_id`. Created if new.",
    )
    metadata = serializers.DictField(required=False, allow_null=True, help_text="≤ 16 KB of JSON.")
    org_id = _schema_only(
        _nullable("integer", "string"), "Compatibility: your organisation's id, anything else is refused (403)."
    )


_API_KEY_IN_BODY = "The ingestion key, when no header carries it: browsers' `sendBeacon` (up.js) cannot set headers."


class TrackIn(EventIn):
    api_key = serializers.CharField(required=False, help_text=_API_KEY_IN_BODY)


class PersonIn(serializers.Serializer):
    """A person update (up.js `identify`, `group`): the end user's fields, not a usage event."""

    closed = True

    # Not `required` in the schema: as with events, an update without it is that item's error
    # in the batch answer's `results`, not a refusal of the whole batch.
    user_id = (
        EventIn()
        .fields["user_id"]
        .__class__(required=False, help_text="Your end user's id (an update without one is rejected in `results`).")
    )
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    age = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=150)
    gender = EventIn().fields["gender"].__class__(required=False, help_text="F, M or O (also female, male, other).")
    properties = serializers.DictField(required=False, allow_null=True, help_text="Merged (≤ 16 KB).")
    account_id = EventIn().fields["account_id"].__class__(required=False, help_text="The end user's account.")
    timestamp = EventIn().fields["timestamp"].__class__(required=False)


class AccountIn(serializers.Serializer):
    """An account update (up.js `group`): your customer company, created if new."""

    closed = True

    account_id = (
        EventIn()
        .fields["account_id"]
        .__class__(required=False, help_text="Your id of the account (an update without one is rejected in `results`).")
    )
    name = serializers.CharField(required=False, allow_null=True, max_length=200)
    properties = serializers.DictField(required=False, allow_null=True, help_text="Merged (≤ 16 KB).")


class BatchIn(serializers.Serializer):
    api_key = serializers.CharField(required=False, help_text=_API_KEY_IN_BODY)
    events = EventIn(many=True, help_text="At most 1,000 events (a bare JSON array is accepted too).")
    people = PersonIn(
        many=True,
        required=False,
        help_text="Person updates; their `results` indices follow the events', in this order (the 1,000 counts all).",
    )
    accounts = AccountIn(many=True, required=False, help_text="Account updates; their indices follow the people's.")
    sent_at = serializers.DateTimeField(
        required=False,
        help_text="When the client sent the request, by its own clock: every timestamp is moved by the clock "
        "skew (the time the request arrived − sent_at), so a device whose clock is wrong records the right "
        "times, as the PostHog and Segment routes do with their `sent_at`/`sentAt`. up.js sends it.",
    )


class TrackOut(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    uuid = serializers.UUIDField()
    timestamp = serializers.DateTimeField()
    queued = serializers.BooleanField(required=False, help_text="Present (true) when the event was queued (202).")


class ItemError(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class ItemResult(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request, from 0.")
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    field = serializers.CharField(required=False, help_text="Rejected: the first field at fault.")
    message = serializers.CharField(required=False, help_text="Rejected: why (all errors are in `errors`).")


class BatchOut(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored (or queued) now.")
    duplicates = serializers.IntegerField(
        help_text="Events not stored again: their uuid was stored before or repeats within the batch."
    )
    errors = ItemError(many=True)
    results = ItemResult(
        many=True,
        help_text=(
            "One entry per item, in request order. In queue mode (202) an item is reported as a "
            "`duplicate` only when its uuid repeats within the batch: one stored before is known "
            "only when the queue is processed, and is `accepted` here (it is still stored once)."
        ),
    )
    queued = serializers.BooleanField(required=False, help_text="Present (true) when the events were queued (202).")


class BatchRejected(BatchOut):
    """400 when no item of the batch was valid: every item's error, and a summary."""

    detail = serializers.CharField()
