"""Generate a large, realistic event history for one organisation (PostgreSQL only).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_analytics_bench \\
        .venv/bin/python bench/generate_events.py --events 10000000 --days 365 --peak-events 1000000

Rows are produced inside PostgreSQL (`INSERT … SELECT … FROM generate_series`, one statement
per day), which is faster than COPY from a client: nothing crosses the socket. The shape:

- `--features` features with a skewed popularity (feature-00 the most used);
- `--users` end users; 30 % exist on day 0, the rest sign up evenly over the period (their
  `first_seen`), with age and gender; each event picks a user who has signed up by then;
  their `last_seen` is their last event, as ingestion keeps it;
- per day about events/days events, ±30 % weekly seasonality (weekends quieter);
  sessions `u<id>-d<day>-<k>` (≤ 3 per user and day), durations 0–600 s;
- one extra "peak" day (the middle of the period) with `--peak-events` events, to time the
  rollup of a ~1M-event day;
- `--accounts` accounts (the tenant's customer companies, `acct-0001`…) with skewed sizes;
  85 % of the end users belong to one, the rest to none;
- a funnel path: `feature-00` → `feature-01` → `feature-02` appear in that order for part of
  the users (the other events are random, so some also match by chance).

Each month of the period gets its own events partition before the load (as `import_events`
and the nightly upkeep give them), so a day's rollup reads its month, not every event that
would otherwise land in the default partition.

The organisation is `bench` (slug) with the admin `bench-admin@bench.example` /
`Bench-Password-42`. Re-running with `--reset` deletes that organisation's rows first.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection  # noqa: E402
from tqdm import tqdm  # noqa: E402

from analytics.models import Segment  # noqa: E402
from insights.models import AlertFiring, Anomaly, Insight  # noqa: E402
from telemetry.models import Account, Feature, UsageEvent  # noqa: E402
from telemetry.services import partitions  # noqa: E402
from tenants.models import Organization, Role, User  # noqa: E402

ADMIN_EMAIL = "bench-admin@bench.example"
ADMIN_PASSWORD = "Bench-Password-42"

_EVENTS_SQL = """
INSERT INTO telemetry_usageevent (uuid, organization_id, feature_id, end_user_id, event_type,
    session_id, session_duration, metadata, timestamp, received_at)
SELECT gen_random_uuid(), %(org)s, f.id, u.id,
       CASE WHEN r.x < 0.97 THEN 'interaction' WHEN r.x < 0.99 THEN 'view' ELSE 'purchase' END,
       'u' || u.id || '-d' || %(day_no)s || '-' || floor(random() * 3)::int,
       round((random() * 600)::numeric, 1)::float8,
       jsonb_build_object('source', (ARRAY['web', 'ios', 'android', 'api'])[1 + floor(r.x * 4)::int]),
       %(day_start)s::timestamptz + (r.t * interval '1 second'),
       %(day_start)s::timestamptz + (r.t * interval '1 second')
FROM (
    SELECT random() AS x,
           floor(random() * 86400) AS t,
           1 + floor(%(features)s * power(random(), 2))::int AS f_rank,
           1 + floor(random() * %(eligible)s)::int AS u_rank
    FROM generate_series(1, %(n)s)
) r
JOIN bench_features f ON f.rank = r.f_rank
JOIN bench_users u ON u.rank = r.u_rank
"""

# For a share of the day's active users, the ordered path feature-00 → 01 → 02 within an hour.
_FUNNEL_SQL = """
INSERT INTO telemetry_usageevent (uuid, organization_id, feature_id, end_user_id, event_type,
    session_id, session_duration, metadata, timestamp, received_at)
SELECT gen_random_uuid(), %(org)s, f.id, u.id, 'interaction', 'funnel-' || u.id || '-' || %(day_no)s,
       60, '{}'::jsonb, ts, ts
FROM (
    SELECT 1 + floor(random() * %(eligible)s)::int AS u_rank,
           %(day_start)s::timestamptz + floor(random() * 80000) * interval '1 second' AS t0,
           random() AS depth
    FROM generate_series(1, %(n)s)
) p
JOIN bench_users u ON u.rank = p.u_rank
CROSS JOIN LATERAL (
    SELECT s.step, p.t0 + s.step * interval '10 minutes' AS ts FROM generate_series(0, 2) AS s(step)
    WHERE s.step = 0 OR (s.step = 1 AND p.depth < 0.6) OR (s.step = 2 AND p.depth < 0.3)
) steps
JOIN bench_features f ON f.rank = steps.step + 1
"""


# The event table's indexes, dropped during the load and rebuilt once at the end (a sorted
# build of 11M entries is far cheaper than 11M random inserts into four btrees).
_INDEXES = {
    "event_org_ts_idx": 'CREATE INDEX event_org_ts_idx ON telemetry_usageevent (organization_id, "timestamp")',
    "event_org_feature_ts_user_idx": "CREATE INDEX event_org_feature_ts_user_idx "
    'ON telemetry_usageevent (organization_id, feature_id, "timestamp") INCLUDE (end_user_id)',
    "event_org_user_ts_idx": "CREATE INDEX event_org_user_ts_idx "
    'ON telemetry_usageevent (organization_id, end_user_id, "timestamp")',
}
_UNIQUE = "ALTER TABLE telemetry_usageevent ADD CONSTRAINT event_org_uuid_uniq UNIQUE (organization_id, uuid)"
# The month-partitioned table's uuid key must hold the partition key (telemetry migration 0005).
_UNIQUE_PARTITIONED = (
    'ALTER TABLE telemetry_usageevent ADD CONSTRAINT event_org_uuid_ts_uniq UNIQUE (organization_id, uuid, "timestamp")'
)


def indexes_drop(cursor):
    cursor.execute("ALTER TABLE telemetry_usageevent DROP CONSTRAINT IF EXISTS event_org_uuid_uniq")
    cursor.execute("ALTER TABLE telemetry_usageevent DROP CONSTRAINT IF EXISTS event_org_uuid_ts_uniq")
    for name in _INDEXES:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")


def indexes_create(cursor):
    cursor.execute("SET maintenance_work_mem = '1GB'")
    cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'telemetry_usageevent'::regclass")
    cursor.execute(_UNIQUE_PARTITIONED if cursor.fetchone() else _UNIQUE)
    for sql in _INDEXES.values():
        cursor.execute(sql)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--peak-events", type=int, default=1_000_000, help="events of the one peak day (0: none)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--accounts", type=int, default=200, help="accounts per organisation (0: none)")
    parser.add_argument("--end", default=None, help="last day YYYY-MM-DD (default: yesterday UTC)")
    parser.add_argument("--reset", action="store_true", help="delete the bench organisations' data first")
    parser.add_argument(
        "--orgs", type=int, default=1, help="organisations (bench, bench-2, …); --events and --users are split"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("generate_events.py needs PostgreSQL (set DATABASE_URL).")

    end = datetime.fromisoformat(args.end).date() if args.end else (datetime.now(UTC) - timedelta(days=1)).date()
    first = end - timedelta(days=args.days - 1)
    t0 = time.perf_counter()
    total = 0
    created = partitions.event_partitions_ensure(months=[first + timedelta(days=i) for i in range(args.days)])
    if created:
        print(f"partitions created: {', '.join(created)}")
    with connection.cursor() as cursor:
        # Bulk load: no per-row foreign-key triggers (ids come from the tables just read),
        # no per-row index maintenance, no fsync per statement.
        cursor.execute("SET session_replication_role = replica; SET synchronous_commit = off")
        indexes_drop(cursor)
    org_ids = []
    for n_org in range(args.orgs):
        slug = "bench" if n_org == 0 else f"bench-{n_org + 1}"
        org = organisation(slug=slug, reset=args.reset)
        org_ids.append(org.pk)
        # Only the first organisation gets the peak day: one ~1M-event day to time.
        total += org_generate(
            org,
            first=first,
            days=args.days,
            events=args.events // args.orgs,
            users=args.users // args.orgs,
            features=args.features,
            accounts=args.accounts,
            peak_events=args.peak_events if n_org == 0 else 0,
        )
    loaded = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = origin")
        indexes_create(cursor)
        cursor.execute(_SEEN_SQL, [org_ids])
        # The update rewrote the bench's end users: their table without the dead rows, as a
        # production table that autovacuum keeps.
        cursor.execute("VACUUM ANALYZE telemetry_enduser")
        cursor.execute("ANALYZE telemetry_usageevent")
    print(f"loaded in {loaded:.0f} s, indexes rebuilt in {time.perf_counter() - t0 - loaded:.0f} s")
    elapsed = time.perf_counter() - t0
    print(
        f"{args.orgs} organisation(s): {total:,} events over {args.days} days {first}..{end} "
        f"(peak day {first + timedelta(days=args.days // 2)}), {args.users:,} end users, "
        f"{args.features} features each, in {elapsed:.0f} s ({total / elapsed:,.0f} events/s)"
    )


# Each end user's first and last event, as ingestion keeps them (`last_seen` drives what the
# user page caches, `queries.end_user`); a user without events is last seen when first seen
# (LEAST ignores NULL). One pass, the bench's organisations only. Parameter: their ids.
_SEEN_SQL = """
UPDATE telemetry_enduser u SET first_seen = LEAST(u.first_seen, m.first_event),
       last_seen = COALESCE(m.last_event, u.first_seen)
FROM (
    SELECT p.id, MIN(e.timestamp) AS first_event, MAX(e.timestamp) AS last_event
    FROM telemetry_enduser p LEFT JOIN telemetry_usageevent e ON e.end_user_id = p.id
    WHERE p.organization_id = ANY(%s)
    GROUP BY p.id
) m
WHERE u.id = m.id
"""


def org_generate(org, *, first, days, events, users, features, accounts, peak_events):
    """One organisation's features, end users and events; returns the number of events."""
    feature_rows = [Feature(organization=org, key=f"feature-{i:02d}", name=f"Feature {i:02d}") for i in range(features)]
    Feature.objects.bulk_create(feature_rows, ignore_conflicts=True)
    users_create(org, users, first, days)
    accounts_assign(org, accounts)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_features; DROP TABLE IF EXISTS bench_users")
        cursor.execute(
            "CREATE TEMP TABLE bench_features AS SELECT row_number() OVER (ORDER BY key) AS rank, id "
            "FROM telemetry_feature WHERE organization_id = %s",
            [org.pk],
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_users AS SELECT row_number() OVER (ORDER BY first_seen, id) AS rank, id "
            "FROM telemetry_enduser WHERE organization_id = %s",
            [org.pk],
        )
        cursor.execute("CREATE INDEX ON bench_users (rank); CREATE INDEX ON bench_features (rank)")
    per_day = events / days
    initial = int(users * 0.3)
    peak_index = days // 2
    total = 0
    for i in tqdm(range(days), unit="day", desc=org.slug):
        day = first + timedelta(days=i)
        eligible = min(users, initial + int((users - initial) * (i + 1) / days))
        weekly = 0.7 if day.weekday() >= 5 else 1.12
        n = int(per_day * weekly) + (peak_events if (i == peak_index and peak_events) else 0)
        params = {
            "org": org.pk,
            "day_no": i,
            "day_start": datetime(day.year, day.month, day.day, tzinfo=UTC),
            "features": features,
            "eligible": eligible,
            "n": n,
        }
        with connection.cursor() as cursor:
            cursor.execute(_EVENTS_SQL, params)
            total += cursor.rowcount
            cursor.execute(_FUNNEL_SQL, {**params, "n": max(1, n // 100)})
            total += cursor.rowcount
    return total


def _reset_tables() -> list[str]:
    """The tables `--reset` empties of the organisation: every events, people, features and
    rollup table (telemetry and analytics), and the anomalies, narratives and alert firings
    computed from them; its settings (saved segments, webhooks, alert rules, API keys) stay."""
    derived = [Anomaly, Insight, AlertFiring]
    models = [*apps.get_app_config("telemetry").get_models(), *apps.get_app_config("analytics").get_models(), *derived]
    return [
        m._meta.db_table
        for m in models
        if m is not Segment and any(f.name == "organization" for f in m._meta.get_fields())
    ]


def organisation(*, slug, reset):
    org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    if reset:
        # Plain SQL, without the per-row foreign-key checks (each would scan the event table:
        # end_user_id alone has no index), over every table with the organisation's events,
        # people, features or figures derived from them: bitmasks or recency rows left behind
        # would count the deleted users in the new data's distinct users.
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            for table in _reset_tables():
                cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [org.pk])
            cursor.execute("SET session_replication_role = origin")
    elif UsageEvent.objects.filter(organization=org).exists():
        sys.exit("The bench organisation already has events; pass --reset to regenerate.")
    if slug == "bench" and not User.objects.filter(email=ADMIN_EMAIL).exists():
        User.objects.create_user(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, organization=org, role=Role.ADMIN)
    return org


def users_create(org, count, first, days):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO telemetry_enduser (organization_id, external_id, email, age, gender, properties,
                first_seen, last_seen, created_at)
            SELECT %(org)s, 'user-' || g, 'user' || g || '@customer.example',
                   13 + floor(random() * 60)::int,
                   (ARRAY['F', 'M', 'O'])[1 + floor(random() * 3)::int],
                   jsonb_build_object('plan', (ARRAY['free', 'free', 'pro', 'team'])[1 + floor(random() * 4)::int]),
                   s, s + interval '300 days', now()
            FROM (
                SELECT g, %(first)s::timestamptz + CASE WHEN g <= %(initial)s THEN interval '0'
                       ELSE floor((g - %(initial)s)::float8 / (%(count)s - %(initial)s) * %(days)s) * interval '1 day'
                       END AS s
                FROM generate_series(1, %(count)s) g
            ) seq
            ON CONFLICT DO NOTHING
            """,
            {
                "org": org.pk,
                "first": datetime(first.year, first.month, first.day, tzinfo=UTC),
                "initial": int(count * 0.3),
                "count": count,
                "days": days - 1,
            },
        )


def accounts_assign(org, count):
    """`count` accounts; 85 % of the end users each join one, picked with a skew (acct-0001
    the largest), so the account filter and breakdown see big and small customers. The pick
    is a hash of the user id, not random(): a volatile pick may be drawn again by the join."""
    if not count:
        return
    Account.objects.bulk_create(
        [Account(organization=org, external_id=f"acct-{i:04d}", name=f"Customer {i:04d}") for i in range(1, count + 1)],
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE telemetry_enduser u SET account_id = a.id
            FROM (SELECT id, 1 + floor(%(count)s * power(((id * 7919) %% 10007) / 10007.0, 2))::int AS rank
                  FROM telemetry_enduser WHERE organization_id = %(org)s AND id %% 100 < 85) pick
            JOIN (SELECT id, row_number() OVER (ORDER BY external_id) AS rank
                  FROM telemetry_account WHERE organization_id = %(org)s) a ON a.rank = pick.rank
            WHERE u.id = pick.id
            """,
            {"org": org.pk, "count": count},
        )


if __name__ == "__main__":
    main()
