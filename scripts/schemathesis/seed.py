"""Migrate and seed the throw-away database of the schemathesis run, then print its
credentials as JSON on the last line of stdout.

    DATABASE_URL=sqlite:////tmp/x/db.sqlite3 .venv/bin/python scripts/schemathesis/seed.py

Called by `scripts/schemathesis/run.py` with the run's environment. The data goes through the
same services the API calls, so every endpoint has something real to answer with: an
organisation whose admin the run logs in as (plus an analyst, a member and a pending
invitation), an ingestion key, 42 days of events on six features, rollups, anomalies, a
webhook with a delivery, and a second organisation whose objects must answer 404.
"""

import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "schemathesis-Passw0rd-2026"
FEATURES = ["search", "export_pdf", "share", "dashboard", "billing", "invite"]
DAYS = 42


def _events(rng, *, users, per_day, end):
    """Events over DAYS days ending at `end`: weekday-shaped, with a spike on the last
    complete day of one feature so the time-series detector has something to say."""
    items = []
    for back in range(DAYS):
        day = end - timedelta(days=back)
        count = per_day if day.weekday() < 5 else per_day // 2
        if back == 1:
            count *= 3
        for _ in range(count):
            feature = "search" if back == 1 else rng.choice(FEATURES)
            user = rng.randrange(users)
            at = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=UTC)
            items.append(
                {
                    "feature": feature,
                    "user_id": f"user-{user}",
                    "session_id": f"s-{user}-{day.isoformat()}",
                    "session_duration": round(rng.uniform(5, 600), 1),
                    "timestamp": at.isoformat(),
                    "metadata": {"plan": rng.choice(["free", "pro"])},
                    "email": f"user-{user}@customer.test",
                    "age": 18 + user % 50,
                    "gender": "FMO"[user % 3],
                }
            )
    return items


def _organisation(name, *, email, rng, per_day):
    from analytics import rollup
    from insights import services as insights
    from insights.models import WebhookDelivery
    from insights.webhooks import webhook_create
    from telemetry.services import ingest
    from tenants import services as tenants

    admin = tenants.organization_register(email=email, password=PASSWORD, organization_name=name)
    org = admin.organization
    domain = email.split("@", 1)[1]
    for role in ("analyst", "member"):
        _invitation, token = tenants.invitation_create(org=org, email=f"{role}@{domain}", role=role, invited_by=admin)
        tenants.invitation_accept(token=token, password=PASSWORD)
    tenants.invitation_create(org=org, email=f"pending@{domain}", role="analyst", invited_by=admin)
    _key, raw_key = tenants.api_key_create(org=org, name="schemathesis", created_by=admin)

    today = datetime.now(UTC).date()
    items = _events(rng, users=30, per_day=per_day, end=today)
    for start in range(0, len(items), 1000):
        ingest.events_ingest(org, items[start : start + 1000])
    rollup.rollup_range(today - timedelta(days=DAYS), today, org)
    insights.anomalies_detect(org)

    webhook = webhook_create(org, url="http://127.0.0.1:9/hook", events=["anomaly.created"])
    WebhookDelivery.objects.create(
        webhook=webhook, event="anomaly.created", payload={"test": True}, attempt=1, error="connection refused"
    )
    return admin, raw_key


def main():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    rng = random.Random(20261130)
    # The run's own organisation first: its rows get the low ids the fuzzer tries most, so
    # `feature_id`s and path ids reach real objects; the other tenant's ids come after.
    admin, raw_key = _organisation("Schemathesis", email="admin@schemathesis.test", rng=rng, per_day=20)
    _organisation("Other tenant", email="admin@other.test", rng=rng, per_day=5)
    credentials = {
        "email": admin.email,
        "password": PASSWORD,
        "api_key": raw_key,
        "admin_id": admin.pk,
        "org_id": admin.organization_id,
    }
    print(json.dumps(credentials))


if __name__ == "__main__":
    main()
