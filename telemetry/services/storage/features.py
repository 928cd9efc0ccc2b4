"""Features for the write path: references (id, key or name) resolved to ids in one query,
created on the fly when the organisation allows it, and a process cache for queue mode."""

import functools
import hashlib
import time
from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.utils.text import slugify

from core.local_cache import LocalCache
from core.text import hidden_character_error
from tenants.models import Organization

from ...models import Feature

# A feature as an event names it: its id, or its key or name.
FeatureRef = int | str


@functools.lru_cache(maxsize=8192)
def feature_ref_error(ref: str) -> str | None:
    """Why a feature key or name (as sent, or typed in the admin) is refused, or None: zero-width,
    bidi-override and other invisible characters would make two features look alike."""
    return hidden_character_error(ref)


def feature_key_for(ref: str) -> str:
    """The slug a feature named `ref` gets when it is created on the fly. Unicode names keep
    their letters; a name with no sluggable character gets a stable hash."""
    key = slugify(ref, allow_unicode=True)[:100]
    if not key:
        key = "feature-" + hashlib.sha256(ref.encode()).hexdigest()[:12]
    return key


def features_resolve(org: Organization, refs: Iterable[FeatureRef], *, create: bool) -> dict[FeatureRef, int]:
    """Map feature references to feature ids within `org`: `{ref: feature_id}`.

    An `int` ref is a feature id; a `str` ref is a key, else a name, else (when `create`)
    a new feature with that name and its slug as key. Refs that resolve to nothing are
    absent from the result — including ids of another organisation's features, which are
    simply not found. One query, plus one insert and one re-read when creating.
    """
    ids: set[int] = set()
    names: set[str] = set()
    for ref in refs:
        if isinstance(ref, int) and not isinstance(ref, bool):
            ids.add(ref)
        elif isinstance(ref, str) and ref:
            names.add(ref)
    if not ids and not names:
        return {}
    keys = names | {feature_key_for(name) for name in names}
    # Plain SQL with the lists as JSON: this runs on every request, and building the ORM
    # query cost more CPU than the query itself.
    if connection.vendor == "postgresql":
        ids_in = "id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)::bigint))"
        str_in = "= ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    else:
        ids_in = "id IN (SELECT value FROM json_each(%s))"
        str_in = "IN (SELECT value FROM json_each(%s))"
    sql = (
        f"SELECT id, key, name FROM {Feature._meta.db_table} WHERE organization_id = %s "
        f"AND ({ids_in} OR key {str_in} OR name {str_in})"
    )
    params: list[Any] = [org.pk, orjson.dumps(list(ids)).decode(), orjson.dumps(list(keys)).decode()]
    params.append(orjson.dumps(list(names)).decode())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _features_match(org, ids, names, rows, create=create)


def _features_match(
    org: Organization, ids: set[int], names: set[str], rows: list[tuple[Any, ...]], *, create: bool
) -> dict[FeatureRef, int]:
    by_id: dict[int, int] = {}
    by_key: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for fid, key, name in rows:
        by_id[fid] = fid
        by_key[key] = fid
        # Several features may share a name; the oldest (lowest id) wins, deterministically.
        if name not in by_name or fid < by_name[name]:
            by_name[name] = fid
    out: dict[FeatureRef, int] = {ref: ref for ref in ids if ref in by_id}
    missing: list[str] = []
    for name in names:
        fid = by_key.get(name) or by_name.get(name) or by_key.get(feature_key_for(name))
        if fid is not None:
            out[name] = fid
        else:
            missing.append(name)
    if missing and create:
        # Concurrent requests may create the same keys: ignore conflicts, then re-read.
        wanted: dict[str, str] = {}
        for name in sorted(missing):
            key = feature_key_for(name)
            # "Dark Mode" and "dark-mode" in one request: the display name wins as the name.
            if key not in wanted or wanted[key] == key:
                wanted[key] = name
        Feature.objects.bulk_create(
            [Feature(organization_id=org.pk, key=key, name=name[:200]) for key, name in wanted.items()],
            ignore_conflicts=True,
        )
        created = dict(Feature.objects.filter(organization_id=org.pk, key__in=wanted).values_list("key", "id"))
        for name in missing:
            fid = created.get(feature_key_for(name))
            if fid is not None:
                out[name] = fid
    return out


# Process-local `(organisation id, ref) → feature id`, for queue mode only: a `track` call
# otherwise pays a features query for the one feature it names. The consumer re-checks every
# feature id when it stores the events, so an id cached after its feature was deleted costs
# a dead-lettered event, never an orphan row; direct mode always asks the database.
feature_cache = LocalCache(max_entries=50_000)


def features_resolve_cached(org: Organization, refs: Iterable[FeatureRef], *, create: bool) -> dict[FeatureRef, int]:
    """`features_resolve`, answering from the process cache what it found recently."""
    clock = time.monotonic()
    out: dict[FeatureRef, int] = {}
    missing: list[FeatureRef] = []
    for ref in refs:
        fid = feature_cache.get((org.pk, ref), clock)
        if fid is None:
            missing.append(ref)
        else:
            out[ref] = fid
    if missing:
        found = features_resolve(org, missing, create=create)
        out.update(found)
        feature_cache.set_many(
            (((org.pk, ref), fid) for ref, fid in found.items()), settings.INGEST_FEATURE_CACHE_SECONDS
        )
    return out


def feature_ids_existing(org_id: int, feature_ids: Iterable[int]) -> set[int]:
    return set(Feature.objects.filter(organization_id=org_id, pk__in=set(feature_ids)).values_list("pk", flat=True))
