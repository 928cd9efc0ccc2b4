"""A Django admin that only shows rows: for what the platform computes or receives (rollups,
raw events, anomalies). A hand-made or hand-edited row would disagree with its source —
recompute a rollup with `manage.py rollup`, change an anomaly's status through the API.

`LargeTableAdmin` is the one for tables that grow with events or end users (raw events, the
per-user and per-dimension rollups: millions of rows at 10 M events). Django's defaults there
cost seconds a page: an ordering no index serves sorts the whole table, `date_hierarchy`
and a filter over a column's values scan it for their distinct values, and the paginator
counts every row. So its lists show the newest rows first along the primary key, page
through at most COUNT_CAP rows (filters and search narrow further), and offer filters with
fixed choices only."""

from collections.abc import Iterable
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import CASCADE, Model, QuerySet
from django.http import HttpRequest

# Rows a large table's change list counts and pages through (100 pages of 100).
COUNT_CAP = 10_000


class ReadOnlyModelAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (one bounded subquery), not the whole table."""

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list.order_by()[:COUNT_CAP].count()
        return super().count

    @property
    def capped(self) -> bool:
        """Whether the count stopped at the cap (there are more rows): the list says "10,000+"."""
        return self.count >= COUNT_CAP


class LargeTableAdmin(ReadOnlyModelAdmin):
    """A read-only change list that stays bounded on a table of millions of rows (see the
    module docstring): newest rows first by primary key (the rollup writes days in order, so
    the latest rolled days come first), no column sorting, a capped count."""

    ordering = ["-pk"]
    sortable_by = ()
    paginator = CappedCountPaginator
    # Django's "Show counts" counts every filter choice over the whole filtered table, in
    # one unbounded aggregate a page (~1 s on the demo's half-million dimension rows).
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False


def choices_filter(field: str, title: str, choices: Iterable[tuple[str, str]]) -> type[admin.SimpleListFilter]:
    """A list filter on `field` offering fixed `choices` ((value, label)), where Django's
    default for a plain column reads the table's distinct values first."""

    class ChoicesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
            return list(choices)

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            return queryset if value is None else queryset.filter(**{field: value})

    ChoicesFilter.title = title
    return ChoicesFilter


class CascadeDeleteAdmin(admin.ModelAdmin):
    """For a model whose delete takes computed or received rows with it (an organisation's or
    a feature's events, rollups and anomalies). Django's delete page listed every one of those
    rows, and refused the delete because the read-only admins above may not delete them: 17 s
    on a demo organisation of 10,000 events to say "Cannot delete", though staff delete
    organisations and features here (docs/decisions.md, "Process-local caches"). Read-only
    stops hand edits, not a cascade; so the page names each object and the kinds of rows that
    go with it, one bounded query per kind, and the delete itself is the model's (the
    organisations' admin hands it to a background deletion instead: its cascade outlasted the
    web worker's timeout, docs/decisions.md 2026-12-04)."""

    def get_deleted_objects(
        self, objs: Iterable[Model], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        objs = list(objs)
        # The organisations of the objects lead each probe where both sides have one: the
        # tables' indexes lead with it, and a probe for a feature's rows by the feature alone
        # read every tenant's rows until it found one.
        org_ids = {getattr(obj, "organization_id", None) for obj in objs} - {None}

        def has_rows(rel: Any) -> bool:
            rows = rel.related_model._base_manager.filter(**{f"{rel.field.name}__in": objs})
            if org_ids and rel.field.name != "organization" and _has_organization(rel.related_model):
                rows = rows.filter(organization_id__in=org_ids)
            return rows.exists()

        kinds = [
            str(rel.related_model._meta.verbose_name_plural)
            # Hidden relations too: most tables point at the organisation with related_name="+".
            for rel in self.model._meta.get_fields(include_hidden=True)
            if rel.one_to_many and rel.auto_created and rel.on_delete is CASCADE and has_rows(rel)
        ]
        going = f" — with its {', '.join(sorted(kinds))}" if kinds else ""
        summary = [f"{obj}{going}" for obj in objs]
        return summary, {str(self.model._meta.verbose_name_plural): len(objs)}, set(), []


def _has_organization(model: type[Model]) -> bool:
    return any(field.name == "organization" for field in model._meta.fields)
