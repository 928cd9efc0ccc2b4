"""/api/v1/org/segments: saved filter sets (analyst and above). Thin views over
`analytics.segments`; another organisation's segment is a 404."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api import list_schema, no_content, validated
from core.openapi import ERROR
from core.pagination import paginate
from tenants.models import Role
from tenants.permissions import OrgAPIView

from . import segments

TAGS = ["segments"]


class SavedSegmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    filters = serializers.DictField(
        child=serializers.CharField(),
        help_text='{age?, gender?, feature?, account?, "user.<property>"?: value}',
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SavedSegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    # Checked by the service, which names the one filter it refuses (`filters.age`, …).
    filters = serializers.JSONField(help_text='{age?, gender?, feature?, account?, "user.<property>"?: value}')


class SegmentListView(OrgAPIView):
    default_role = Role.ANALYST

    @list_schema(SavedSegmentSerializer, operation_id="org_segments_list", summary="Saved segments", tags=TAGS)
    def get(self, request):
        return paginate(request, segments.segment_list(self.org), SavedSegmentSerializer, view=self)

    @extend_schema(
        request=SavedSegmentInputSerializer,
        responses={201: SavedSegmentSerializer, 400: ERROR, 403: ERROR},
        summary="Save a segment (use it as ?segment=<id> on any analytics endpoint or page)",
        tags=TAGS,
    )
    def post(self, request):
        data = validated(SavedSegmentInputSerializer, request)
        segment = segments.segment_create(self.org, name=data["name"], filters=data["filters"])
        return Response(SavedSegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(OrgAPIView):
    default_role = Role.ANALYST

    @extend_schema(responses={200: SavedSegmentSerializer, 404: ERROR}, summary="One segment", tags=TAGS)
    def get(self, request, segment_id):
        return Response(SavedSegmentSerializer(segments.segment_get(self.org, segment_id)).data)

    @extend_schema(
        request=SavedSegmentInputSerializer,
        responses={200: SavedSegmentSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        summary="Rename a segment or change its filters",
        tags=TAGS,
    )
    def patch(self, request, segment_id):
        segments.segment_get(self.org, segment_id)  # another organisation's: 404 whatever the body
        data = validated(SavedSegmentInputSerializer, request, partial=True)
        segment = segments.segment_update(self.org, segment_id, **data)
        return Response(SavedSegmentSerializer(segment).data)

    @extend_schema(responses={204: None, 403: ERROR, 404: ERROR}, summary="Delete a segment", tags=TAGS)
    def delete(self, request, segment_id):
        segments.segment_delete(self.org, segment_id)
        return no_content()
