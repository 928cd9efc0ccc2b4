"""Distinct active users over ranges and weeks from the active-day bitmasks, exact and without
reading one row per active day: `UserActiveDays` (one row per end user and 8-week block)
for all features together, `UserFeatureActiveDays` (one per end user, feature and block)
under a feature filter and for the per-feature counts, `UserEventTypeActiveDays` (one per
end user, event type and block) for the users per event type over all features.

A user is active in a range when one of their rows, ANDed with the range's days of that
block, is not zero."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from django.db import connections
from django.db.models import BigIntegerField, Case, Count, F, Min, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast
from django.db.models.lookups import Exact

from core.db_routing import read_alias
from tenants.models import Organization

from ..active_days import block_of, range_masks
from ..feature_masks import FEATURE_MASK_FIELDS, weeks_split
from ..models import DailyUserFeatureUsage, FeatureBit, UserActiveDays, UserEventTypeActiveDays, UserFeatureActiveDays
from ..recency import recency_feature_users
from ..recency_segments import RecencyRow, reaches, segment_rows, users_within, weekly_within
from .common import feature_pk, week_monday
from .filters import account_pk, filters_apply, has_person_filter, rolled_up_model

UsersOf = dict[str, int]
WeeksOf = dict[str, dict[date, int]]


def _days_in(mask: int, column: str = "active_days") -> CombinedExpression:
    """A row's active days among the bits of `mask` (of `column`'s days)."""
    bits: BigIntegerField[int, int] = BigIntegerField()
    return CombinedExpression(F(column), "&", Value(mask, output_field=bits), output_field=bits)


def active_rows(org: Organization, filters: Mapping[str, Any]) -> QuerySet[Any]:
    """The organisation's bitmask rows narrowed by `filters`: the per-user ones, or under a
    feature filter that feature's per-user rows (one row per user and block either way)."""
    model: Any = UserActiveDays if feature_pk(filters.get("feature")) is None else UserFeatureActiveDays
    return filters_apply(model.objects.filter(organization=org), filters)


def _feature_bitmasks(org: Organization, filters: Mapping[str, Any]) -> QuerySet[Any]:
    """The organisation's per-feature bitmask rows under `filters`."""
    return filters_apply(UserFeatureActiveDays.objects.filter(organization=org), filters)


# The blocks a range may touch for `first_hits` to count it (the rows carry two earlier blocks).
FIRST_HIT_BLOCKS = 3


def first_hits(start: date, end: date) -> Case:
    """An expression on per-feature bitmask rows: the row's active days within start..end
    when it is the first of its user's rows (for that feature) active in the range, else 0.
    A row of the range's second or third block learns from its copies of the blocks before
    (`earlier_days_1`, `_2`) whether the user was active earlier in the range. For ranges
    touching at most FIRST_HIT_BLOCKS blocks."""
    masks = list(range_masks(start, end).items())
    if len(masks) > FIRST_HIT_BLOCKS:
        raise ValueError(f"A range over more than {FIRST_HIT_BLOCKS} blocks: {start}..{end}")
    whens = []
    for i, (block, mask) in enumerate(masks):
        earlier: list[Exact[int]] = [Exact(_days_in(masks[i - k][1], f"earlier_days_{k}"), 0) for k in range(1, i + 1)]
        days: Any = _days_in(mask)
        for condition in earlier:
            days = Case(When(condition, then=days), default=Value(0), output_field=BigIntegerField())
        whens.append(When(block_start=block, then=days))
    return Case(*whens, default=Value(0), output_field=BigIntegerField())


def feature_users(org: Organization, start: date, end: date, filters: Mapping[str, Any]) -> dict[int, int]:
    """{feature_id: distinct end users of that feature within start..end} under `filters`
    (a feature, the person filters), in one statement. Each user is counted on their first
    row active in the range (`first_hits`), so a COUNT answers without the sort of a
    COUNT(DISTINCT), which only ranges over more blocks need. Without a person filter, or
    with only age and gender, or only an account, the per-feature recency rows answer
    instead, one row per feature and day (per segment or account under those filters, which
    then follow each user's age, gender and account when the day's rows were built, as the
    segment and account rollups do; the bitmasks, over longer ranges or a stale day, follow
    them now: `recency`)."""
    if not has_person_filter(filters) or rolled_up_model(filters) is not None:
        counts = recency_feature_users(
            read_alias(),
            org.pk,
            start,
            end,
            feature_pk(filters.get("feature")),
            age_band=filters.get("age") or None,
            gender=filters.get("gender") or None,
            account_id=account_pk(filters.get("account")),
        )
        if counts is not None:
            return counts
    blocks = list(range_masks(start, end))
    rows = _feature_bitmasks(org, filters).filter(block_start__in=blocks)
    if len(blocks) <= FIRST_HIT_BLOCKS:
        rows, users = rows.alias(first=first_hits(start, end)).filter(first__gt=0), Count("pk")
    else:
        rows, users = active_within(rows, start, end), Count("end_user_id", distinct=True)
    return dict(rows.values("feature_id").annotate(n=users).values_list("feature_id", "n"))


def any_feature_users(
    org: Organization, start: date, end: date, filters: Mapping[str, Any], feature_ids: list[int]
) -> int:
    """Distinct end users of any of `feature_ids` within start..end under `filters` (each
    counted once however many of them they used), in one statement: from the weekly feature
    masks where every one of the features has a bit (and no feature filter narrows the
    rows), else from the per-feature bitmask rows."""
    if feature_pk(filters.get("feature")) is None:
        counted = _masked_feature_users(org, start, end, filters, feature_ids)
        if counted is not None:
            return counted
    rows = active_within(_feature_bitmasks(org, filters), start, end).filter(feature_id__in=feature_ids)
    return int(rows.aggregate(n=Count("end_user_id", distinct=True))["n"] or 0)


def _masked_feature_users(
    org: Organization, start: date, end: date, filters: Mapping[str, Any], feature_ids: list[int]
) -> int | None:
    """`any_feature_users` from the weekly feature masks (`analytics.feature_masks`): the
    range's whole weeks from one row per user and block, its edge days from the per-user
    feature rows of those days; None when one of the features has no bit."""
    wanted = set(feature_ids)
    bits = list(FeatureBit.objects.filter(organization=org, feature_id__in=wanted).values_list("bit", flat=True))
    if len(bits) != len(wanted):
        return None
    mask = sum(1 << bit for bit in bits)
    whole, edge_days = weeks_split(start, end)
    parts: list[QuerySet[Any]] = []
    if whole:
        hit = Case(
            *(When(block_start=block, then=_weeks_hit(weeks, mask)) for block, weeks in whole.items()),
            default=Value(0),
            output_field=BigIntegerField(),
        )
        rows = UserActiveDays.objects.filter(organization=org, block_start__in=list(whole))
        parts.append(filters_apply(rows, filters).alias(hit=hit).exclude(hit=0).values("end_user_id"))
    if edge_days:
        edge_rows = DailyUserFeatureUsage.objects.filter(organization=org, date__in=edge_days, feature_id__in=wanted)
        parts.append(filters_apply(edge_rows, filters).values("end_user_id"))
    if not parts:
        return 0
    if len(parts) == 1:
        return parts[0].distinct().count()
    return parts[0].union(parts[1]).count()


def _weeks_hit(weeks: list[int], mask: int) -> CombinedExpression:
    """A row's features of `mask` used in any of its block's `weeks`."""
    bits: BigIntegerField[int, int] = BigIntegerField()
    used: Any = F(FEATURE_MASK_FIELDS[weeks[0]])
    for week in weeks[1:]:
        used = CombinedExpression(used, "|", F(FEATURE_MASK_FIELDS[week]), output_field=bits)
    return CombinedExpression(used, "&", Value(mask, output_field=bits), output_field=bits)


def features_used(org: Organization, filters: Mapping[str, Any], periods: list[tuple[date, date]]) -> list[int]:
    """Distinct features used in each of `periods` by the end users `filters` keep, in one
    statement over those users' per-feature bitmask rows (along the index led by the end
    user when a person filter narrows them to a few)."""
    return _distinct_per_period(_feature_bitmasks(org, filters), "feature_id", periods)


def event_type_bitmasks(org: Organization, filters: Mapping[str, Any]) -> QuerySet[Any] | None:
    """The organisation's per-event-type bitmask rows under the person `filters`; None under
    a feature filter, which they cannot apply (each row spans every feature)."""
    if feature_pk(filters.get("feature")) is not None:
        return None
    return filters_apply(UserEventTypeActiveDays.objects.filter(organization=org), filters)


def hits(start: date, end: date) -> Any:
    """An expression: a row's active days within start..end (0: none)."""
    masks = range_masks(start, end)
    return Case(
        *(When(block_start=block, then=_days_in(mask)) for block, mask in masks.items()),
        default=Value(0),
        output_field=BigIntegerField(),
    )


def active_within(rows: QuerySet[Any], start: date, end: date) -> QuerySet[Any]:
    """`rows` of users active within start..end (one or more rows per user)."""
    return rows.filter(block_start__in=list(range_masks(start, end))).alias(hit=hits(start, end)).filter(hit__gt=0)


def segment_filter(filters: Mapping[str, Any]) -> tuple[str | None, str | None] | None:
    """(age band, gender), each None when not filtered, when `filters` hold nothing else: the
    per-segment recency rows (`recency_segments`) can count the users they keep."""
    set_filters = {name: value for name, value in filters.items() if value}
    if set(set_filters) - {"age", "gender"}:
        return None
    return set_filters.get("age"), set_filters.get("gender")


def segment_recency_rows(
    org: Organization, filters: Mapping[str, Any], first: date, last: date, by: str | None = None
) -> list[RecencyRow] | None:
    """The per-segment recency rows of first..last the filters keep, valued by `by` ("age",
    "gender", None: all as one), or None when they cannot answer (another filter, a stale
    day)."""
    segment = segment_filter(filters)
    if segment is None:
        return None
    return segment_rows(read_alias(), org.pk, first, last, by=by, age_band=segment[0], gender=segment[1])


def distinct_users(org: Organization, filters: Mapping[str, Any], periods: list[tuple[date, date]]) -> list[int]:
    """Distinct end users active in each of `periods`, in one statement: from the per-segment
    recency rows under no filter but age and gender, over periods they reach; else from the
    active-day bitmasks."""
    if all(reaches(first, last) for first, last in periods):
        rows = segment_recency_rows(org, filters, min(p[0] for p in periods), max(p[1] for p in periods))
        if rows is not None:
            return [users_within(rows, first, last)[""] for first, last in periods]
    return _distinct_per_period(active_rows(org, filters), "end_user_id", periods)


def filtered_weekly_users(org: Organization, filters: Mapping[str, Any], start: date, end: date) -> dict[date, int]:
    """{Monday: distinct users active that week within start..end} under `filters`: from the
    per-segment recency rows where they answer (as `distinct_users`), else the bitmasks."""
    if reaches(start, end):
        rows = segment_recency_rows(org, filters, start, end)
        if rows is not None:
            return dict(weekly_within(rows, start, end).get("", {}))
    return weekly_users(active_rows(org, filters), start, end)


def _distinct_per_period(rows: QuerySet[Any], column: str, periods: list[tuple[date, date]]) -> list[int]:
    """Distinct values of `column` among the bitmask `rows` active in each of `periods`."""
    blocks = sorted({block for first, last in periods for block in range_masks(first, last)})
    aliases = {f"hit{i}": hits(first, last) for i, (first, last) in enumerate(periods)}
    counts = {f"p{i}": Count(column, distinct=True, filter=Q(**{f"hit{i}__gt": 0})) for i in range(len(periods))}
    totals = rows.filter(block_start__in=blocks).alias(**aliases).aggregate(**counts)
    return [totals[f"p{i}"] or 0 for i in range(len(periods))]


def _week_counts(
    start: date, end: date, *, distinct: bool = False
) -> tuple[list[date], list[date], dict[str, Any], dict[str, Any]]:
    """The Mondays of start..end, the blocks they lie in, and per week an alias (the row's
    days of that week within the range) and a count of the rows where it is not zero (of
    their distinct users with `distinct`: rows where a user may have several a block)."""
    weeks: list[date] = []
    monday = week_monday(start)
    while monday <= end:
        weeks.append(monday)
        monday += timedelta(days=7)
    aliases: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for i, week in enumerate(weeks):
        ((block, mask),) = range_masks(max(week, start), min(week + timedelta(days=6), end)).items()
        aliases[f"w{i}"] = _days_in(mask)
        in_week = Q(block_start=block, **{f"w{i}__gt": 0})
        counts[f"n{i}"] = (
            Count("end_user_id", distinct=True, filter=in_week) if distinct else Count("pk", filter=in_week)
        )
    blocks = sorted({block_of(week) for week in weeks} | {block_of(start)})
    return weeks, blocks, aliases, counts


def weekly_users(rows: QuerySet[Any], start: date, end: date) -> dict[date, int]:
    """{Monday: distinct users of `rows` active that week within start..end}: a week lies in
    one block, so each user's week is one bit test on one row and the counts need no
    DISTINCT; one statement for every week."""
    weeks, blocks, aliases, counts = _week_counts(start, end)
    totals = rows.filter(block_start__in=blocks).alias(**aliases).aggregate(**counts)
    return {week: totals[f"n{i}"] for i, week in enumerate(weeks) if totals[f"n{i}"]}


def weekly_users_by(
    rows: QuerySet[Any], start: date, end: date, group: str, *, distinct: bool = False
) -> dict[Any, dict[date, int]]:
    """`weekly_users` per value of the annotation `group` of `rows`, in one statement; with
    `distinct`, for groups where a user may have several rows a block (see `_week_counts`)."""
    weeks, blocks, aliases, counts = _week_counts(start, end, distinct=distinct)
    grouped = rows.filter(block_start__in=blocks).alias(**aliases).values(group).annotate(**counts)
    return {row[group]: {week: row[f"n{i}"] for i, week in enumerate(weeks) if row[f"n{i}"]} for row in grouped}


# Week bits a BIGINT column carries: 62 keep every sum of them positive.
_WEEKS_PER_COLUMN = 62


def users_and_weeks_by(
    rows: QuerySet[Any], start: date, end: date, *, keys: QuerySet[Any] | None = None, key_of_row: Any = None
) -> tuple[UsersOf, WeeksOf]:
    """Per value of each end user's key, its distinct users active within start..end and
    {Monday: its users active that week} (weeks without any left out), in one statement.
    Each user's rows of the range's blocks are summed into one bit per week (a week lies in
    one block, so the sum is an OR), then counted per value and per bit: the range's users
    and its weeks' in one pass, where a ranking would read the rows again. `rows` hold at
    most one row per user and block (`UserActiveDays`, or `UserFeatureActiveDays` of one
    feature): two would add a week's bit twice.

    The key (one value per user, as a profile field is), either way: `keys`, the end users'
    `values("id", "bkey")`, joined with the users' sums, so it is read once per user (a JSON
    property read per row was ~25 % of the statement); or `key_of_row`, an expression on
    `rows` for rows already joined with their end users (by a person filter), where a second
    join would cost more than it saves. Exactly one of them; the key is never NULL (a
    missing value is `(none)`, as `text_of` says it)."""
    if (keys is None) == (key_of_row is None):
        raise TypeError("users_and_weeks_by takes exactly one of keys and key_of_row")
    weeks, blocks, aliases, _ = _week_counts(start, end)
    if not weeks:
        return {}, {}
    columns: list[dict[date, list[When]]] = [{} for _ in range(0, len(weeks), _WEEKS_PER_COLUMN)]
    for i, week in enumerate(weeks):
        bit = Value(1 << (i % _WEEKS_PER_COLUMN), output_field=BigIntegerField())
        (block,) = range_masks(max(week, start), min(week + timedelta(days=6), end))
        columns[i // _WEEKS_PER_COLUMN].setdefault(block, []).append(When(**{f"w{i}__gt": 0}, then=bit))
    zero = Value(0, output_field=BigIntegerField())

    def week_bits(of_block: list[When]) -> Any:
        bits = [Case(when, default=zero, output_field=BigIntegerField()) for when in of_block]
        return sum(bits[1:], bits[0])

    sums: dict[str, Any] = {
        f"c{n}": Cast(
            Sum(
                Case(
                    *(When(block_start=b, then=week_bits(w)) for b, w in column.items()),
                    default=zero,
                    output_field=BigIntegerField(),
                )
            ),
            BigIntegerField(),
        )
        for n, column in enumerate(columns)
    }
    # Without `keys`, each user's key comes with their sums (one value per user: MIN is it).
    key_annotation = {} if keys is not None else {"bkey": Min(key_of_row)}
    per_user = (
        rows.filter(block_start__in=blocks)
        .alias(**aliases)
        .values("end_user_id")
        .annotate(**key_annotation, **sums)
        .order_by()
        .values("end_user_id", *key_annotation, *sums)
    )
    # Compiled for the database the rows are read from (a replica's may not be the default's).
    inner_sql, params = per_user.query.get_compiler(using=per_user.db).as_sql()
    if keys is not None:
        keys_sql, keys_params = keys.query.get_compiler(using=per_user.db).as_sql()
        source, key = f"({inner_sql}) per_user JOIN ({keys_sql}) k ON k.id = per_user.end_user_id", "k.bkey"
        params = (*params, *keys_params)
    else:
        source, key = f"({inner_sql}) per_user", "per_user.bkey"
    counted = ", ".join(
        f"SUM(CASE WHEN (c{i // _WEEKS_PER_COLUMN} & {1 << (i % _WEEKS_PER_COLUMN)}) <> 0 THEN 1 ELSE 0 END)"
        for i in range(len(weeks))
    )
    active_any = " OR ".join(f"{column} <> 0" for column in sums)
    sql = f"SELECT {key}, COUNT(*), {counted} FROM {source} WHERE {active_any} GROUP BY {key}"
    with connections[per_user.db].cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    users = {value: int(n) for value, n, *_ in found}
    weekly = {value: {week: int(n) for week, n in zip(weeks, counts, strict=True) if n} for value, _, *counts in found}
    return users, weekly
