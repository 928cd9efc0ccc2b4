"""Request/response shapes of the ingestion API, for the OpenAPI schema only: the
endpoints validate with `services.ingest` (one pass, per-item errors), not with these."""

from rest_framework import serializers


class EventIn(serializers.Serializer):
    uuid = serializers.UUIDField(required=False, help_text="Idempotency key: an event is stored once per uuid.")
    feature_id = serializers.IntegerField(required=False)
    feature = serializers.CharField(required=False, help_text="Feature key or name (created if the org allows it).")
    user_id = serializers.CharField(required=False, help_text="Your end user's id (omit for anonymous events).")
    email = serializers.EmailField(required=False)
    age = serializers.IntegerField(required=False, min_value=0, max_value=150)
    gender = serializers.ChoiceField(choices=["F", "M", "O"], required=False)
    properties = serializers.DictField(required=False, help_text="End-user properties, merged (≤ 16 KB).")
    event_type = serializers.CharField(required=False, default="interaction")
    session_id = serializers.CharField(required=False)
    session_duration = serializers.FloatField(required=False, min_value=0)
    timestamp = serializers.DateTimeField(required=False, help_text="Default now; at most 24 h in the future.")
    metadata = serializers.DictField(required=False, help_text="≤ 16 KB of JSON.")
    org_id = serializers.IntegerField(required=False, help_text="Compatibility: must be your organisation.")


class BatchIn(serializers.Serializer):
    events = EventIn(many=True, help_text="At most 1,000 events (a bare JSON array is accepted too).")


class TrackOut(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    uuid = serializers.UUIDField()
    timestamp = serializers.DateTimeField()
    queued = serializers.BooleanField(required=False, help_text="Present (true) when the event was queued (202).")


class ItemError(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class BatchOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = ItemError(many=True)
    queued = serializers.BooleanField(required=False, help_text="Present (true) when the events were queued (202).")


class BatchRejected(BatchOut):
    """400 when no item of the batch was valid: every item's error, and a summary."""

    detail = serializers.CharField()
