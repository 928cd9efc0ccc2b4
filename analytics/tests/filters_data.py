"""A hand-counted fixture where every filter of DESIGN's set changes every analytics answer:
four end users who differ in age band, gender, plan and account, on two features, over the
last two weeks (relative to today, so the look-back endpoints see it), rolled up by the real rollup.

Day offsets are days before today (T). Users (first seen on their first event):

    u1  age 15 (<18)    F  plan=pro   acme    T-14 search, T-14 export, T-13 search, T-7 search
    u2  age 30 (18-40)  M  plan=free  globex  T-14 search, T-2 export
    u3  age 50 (>40)    O  plan=pro   acme    T-7 search, T-7 export
    u4  age 25 (18-40)  F  plan=free  (none)  T-7 export, T-6 search, T-5 export
    (anonymous)                                T-1 search

Accounts: acme (u1, u3: 6 events, 4 search and 2 export), globex (u2: 2 events), and u4 in
none. Another organisation has an account "initech" (and one called "acme" of its own, with
users and events): neither may answer here.

Every event carries a session (`s-<user>-<offset>`) of 60 s, the anonymous one none. Event
type "interaction", except u3's two events: "click", with metadata {"source": "email"}.
Funnel search → export within 7 days: u1 (T-14 → T-14), u3 (T-7 → T-7), u4 (T-6 → T-5);
u2 enters (T-14) but its export (T-2) is 12 days later."""

from datetime import timedelta

from analytics import rollup
from core.days import today
from telemetry.models import Account, UsageEvent
from tenants.models import Organization

from .factories import at, end_user, event, feature

OTHER_TENANT_SLUG = "other-tenant-filters"

PEOPLE = {
    "u1": {"age": 15, "gender": "F", "properties": {"plan": "pro"}},
    "u2": {"age": 30, "gender": "M", "properties": {"plan": "free"}},
    "u3": {"age": 50, "gender": "O", "properties": {"plan": "pro"}},
    "u4": {"age": 25, "gender": "F", "properties": {"plan": "free"}},
}
ACCOUNTS = {"u1": "acme", "u2": "globex", "u3": "acme"}
EVENTS = (
    ("u1", "search", 14),
    ("u1", "export", 14),
    ("u1", "search", 13),
    ("u1", "search", 7),
    ("u2", "search", 14),
    ("u2", "export", 2),
    ("u3", "search", 7),
    ("u3", "export", 7),
    ("u4", "export", 7),
    ("u4", "search", 6),
    ("u4", "export", 5),
    (None, "search", 1),
)


def day_of(offset):
    return today() - timedelta(days=offset)


def filters_fixture(org):
    """The rows above, rolled up; returns {"features": {key: Feature}, "users": {id: EndUser}}."""
    features = {key: feature(org, key) for key in ("search", "export")}
    accounts = {
        key: Account.objects.create(organization=org, external_id=key, name=key.title()) for key in ("acme", "globex")
    }
    users = {}
    for external_id, person in PEOPLE.items():
        first = max(offset for uid, _, offset in EVENTS if uid == external_id)
        account = accounts.get(ACCOUNTS.get(external_id, ""))
        users[external_id] = end_user(
            org, external_id, first_seen=at(day_of(first).isoformat(), "09:00:00"), account=account, **person
        )
    for uid, key, offset in EVENTS:
        # Minutes apart by feature, so an export on the day of a search comes after it.
        when = at(day_of(offset).isoformat(), "09:00:00" if key == "search" else "09:30:00")
        if uid is None:
            event(org, features[key], None, when)
        else:
            event(org, features[key], users[uid], when, session=f"s-{uid}-{offset}", duration=60)
    UsageEvent.objects.filter(end_user=users["u3"]).update(event_type="click", metadata={"source": "email"})
    rollup.rollup_range(day_of(20), today(), org)
    _other_organisation()
    return {"features": features, "users": users, "accounts": accounts}


def _other_organisation():
    """Another tenant with accounts "initech" and "acme" (its own), a user in each, events."""
    other = Organization.objects.create(name="Other tenant", slug=OTHER_TENANT_SLUG)
    search = feature(other, "search")
    for key in ("initech", "acme"):
        account = Account.objects.create(organization=other, external_id=key, name=key.title())
        person = end_user(other, f"x-{key}", age=30, gender="F", account=account)
        for offset in (7, 6, 5):
            event(other, search, person, at(day_of(offset).isoformat()), session=f"x-{key}-{offset}", duration=9)
    rollup.rollup_range(day_of(20), today(), other)
