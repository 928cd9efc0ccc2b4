"""Writes a MovieLens event plan into the database through the ingestion write path
(`telemetry.services.storage`), so the seeder exercises the same COPY / bulk insert, end-user
upsert and late-day marks as the API. Everything is idempotent: organisations, admins,
features and end users are matched by their natural keys and events by their uuid5."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from django.db import transaction

from tenants.models import Organization, Role, User

from ..models import Feature
from ..services import storage
from .accounts import DEMO_ACCOUNTS, account_index, account_rows, at_risk_applied
from .dataset import MovieLensData
from .events import EventPlan, end_user_external_id, feature_key

DEMO_PASSWORD = "movielens-demo"
CHUNK = 5000


@dataclass
class DemoLogin:
    organization: str
    email: str
    password: str | None  # None: the account existed already and its password was left alone


@dataclass
class SeedResult:
    planned: int = 0
    inserted: int = 0
    logins: list[DemoLogin] = field(default_factory=list)
    per_org: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return self.planned - self.inserted


def demo_org_ensure(index: int) -> tuple[Organization, DemoLogin]:
    """`Org-<index>` and its admin `admin@org-<index>.demo`, created once."""
    with transaction.atomic():
        org, _ = Organization.objects.get_or_create(slug=f"org-{index}", defaults={"name": f"Org-{index}"})
        email = f"admin@org-{index}.demo"
        user = User.objects.filter(email__iexact=email).first()
        password = None
        if user is None:
            User.objects.create_user(email=email, password=DEMO_PASSWORD, organization=org, role=Role.ADMIN)
            password = DEMO_PASSWORD
    return org, DemoLogin(organization=org.name, email=email, password=password)


def _features_ensure(org: Organization, items: pd.Series, titles: dict[int, str]) -> dict[int, int]:
    wanted = {int(i): feature_key(int(i)) for i in items.unique()}
    Feature.objects.bulk_create(
        [
            Feature(
                organization=org,
                key=key,
                name=(titles.get(item) or key)[:200],
                description=f"MovieLens item {item}",
            )
            for item, key in wanted.items()
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    ids = dict(Feature.objects.filter(organization=org, key__in=list(wanted.values())).values_list("key", "id"))
    return {item: ids[key] for item, key in wanted.items()}


def _end_users_ensure(org: Organization, events: pd.DataFrame, users: pd.DataFrame | None) -> dict[int, int]:
    """The end users of `events`, each in their demo account (see `seed.accounts`)."""
    span = events.groupby("user_id")["timestamp"].agg(["min", "max"])
    profile = users.set_index("user_id") if users is not None else None
    account_ids = storage.accounts_upsert(org, account_rows())
    accounts = [account_ids[external_id] for external_id, _ in DEMO_ACCOUNTS]
    rows = []
    for user_id, first, last in span.itertuples():
        row = {
            "external_id": end_user_external_id(int(user_id)),
            "account_id": accounts[account_index(int(user_id))],
            "first_seen": datetime.fromtimestamp(int(first), UTC),
            "last_seen": datetime.fromtimestamp(int(last), UTC),
        }
        if profile is not None and user_id in profile.index:
            p = profile.loc[user_id]
            if pd.notna(p["age"]):
                row["age"] = int(p["age"])
            row["gender"] = p["gender"] or ""
            props = {k: str(p[k]) for k in ("occupation", "zip_code") if k in p and p[k]}
            if props:
                row["properties"] = props
        rows.append(row)
    ids = storage.end_users_upsert(org, rows)
    return {int(user_id): ids[end_user_external_id(int(user_id))] for user_id in span.index}


def movielens_seed(
    *,
    data: MovieLensData,
    plan: EventPlan,
    orgs: int,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Stores `plan` (built from `data`) into organisations Org-1…Org-<orgs>."""
    result = SeedResult(planned=len(plan))
    events = plan.all_events()
    titles = {}
    if data.items is not None:
        titles = dict(zip(data.items["item_id"].tolist(), data.items["title"].tolist(), strict=True))
    now = datetime.now(UTC)
    for index in range(orgs):
        org, login = demo_org_ensure(index + 1)
        result.logins.append(login)
        mine = at_risk_applied(events[events["org"] == index], now=now)
        result.per_org[org.name] = 0
        if mine.empty:
            continue
        feature_ids = _features_ensure(org, mine["item_id"], titles)
        user_ids = _end_users_ensure(org, mine, data.users)

        columns = zip(
            mine["uuid"].tolist(),
            mine["item_id"].map(feature_ids).tolist(),
            mine["user_id"].map(user_ids).tolist(),
            mine["session_id"].tolist(),
            mine["session_duration"].tolist(),
            mine["timestamp"].tolist(),
            mine["item_id"].tolist(),
            mine["rating"].tolist(),
            mine["injected"].tolist(),
            mine["event_type"].tolist(),
            mine["burst"].tolist(),
            strict=True,
        )
        days = set()
        rows = []
        for uuid, feature_id, end_user_id, session_id, duration, ts, item, rating, injected, kind, burst in columns:
            metadata = {"source": data.source, "raw_feature": item, "rating": rating}
            if injected:
                metadata["injected"] = True
            if burst:
                metadata["burst"] = True
            moment = datetime.fromtimestamp(ts, UTC)
            days.add(moment.date())
            rows.append(
                {
                    "uuid": uuid,
                    "organization_id": org.pk,
                    "feature_id": feature_id,
                    "end_user_id": end_user_id,
                    "event_type": kind,
                    "session_id": session_id,
                    "session_duration": duration,
                    "metadata": metadata,
                    "timestamp": moment,
                    "received_at": now,
                }
            )
            if len(rows) == CHUNK:
                result.per_org[org.name] += storage.events_insert(rows=rows)
                if progress:
                    progress(len(rows))
                rows = []
        if rows:
            result.per_org[org.name] += storage.events_insert(rows=rows)
            if progress:
                progress(len(rows))
        # Past days need a (re-)rollup; `manage.py rollup --all-days` after seeding covers
        # them too, but the marks keep a seeded-but-not-rolled-up database honest.
        storage.days_mark_dirty(org.pk, days)
        result.inserted += result.per_org[org.name]
    return result
