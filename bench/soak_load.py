"""The soak's client processes (see soak.py): SDK-like senders of 1,000-event batches and of
single `track` events with an organisation's API key, and dashboard readers that call the
analytics and insights APIs with a JWT and open the pages with a session.

Every client runs at a fixed pace (a request every `interval` seconds; when a request runs
late the schedule restarts from now instead of bursting to catch up), records
a `Record` per request, and puts its records on a queue when `stop_at` passes.
"""

import http.client
import json
import random
import re
import resource
import signal
import time
import uuid
from collections import namedtuple
from datetime import UTC, datetime, timedelta

import requests

BATCH = 1000
FEATURES = [f"feature-{i:02d}" for i in range(50)]
FUNNEL = ",".join(FEATURES[:3])
ERROR_BODY_CHARS = 300  # of an unexpected answer, kept for the report
JWT_REFRESH_SECONDS = 10 * 60  # access tokens live 15 minutes

# One request: when it started (seconds into the load), what it was, how it ended.
Record = namedtuple("Record", "t endpoint status ms acknowledged refused")


def user_id(n):
    return f"soak-user-{n}"


def _feature():
    # Skewed like real usage: a few features take most events.
    return FEATURES[min(len(FEATURES) - 1, int(len(FEATURES) * random.random() ** 2))]


def event(spec, new_users, now):
    """One event as an SDK sends it: its own uuid, a user from the organisation's population
    (a small share brand new), mostly stamped within the last two minutes of today, a small
    share on yesterday (late data, which marks that day for a re-rollup)."""
    if random.random() < spec["new_user_share"]:
        new_users[0] += 1
        user = f"soak-new-{spec['client']}-{new_users[0]}"
    else:
        user = user_id(random.randrange(spec["end_users"]))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if random.random() < spec["late_share"]:
        stamp = midnight - timedelta(seconds=random.uniform(1, 86_399))
    else:
        stamp = max(midnight, now - timedelta(seconds=random.uniform(0, 120)))
    return {
        "uuid": str(uuid.uuid4()),
        "feature": _feature(),
        "user_id": user,
        "event_type": "interaction",
        "session_id": f"{user}-{now:%H}",
        "session_duration": round(random.uniform(1, 600), 1),
        "timestamp": stamp.isoformat(),
        "metadata": {"source": "soak", "plan": random.choice(("free", "pro", "team"))},
    }


def post_json(port, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _accepted(path, status, data, sent):
    """(events acknowledged, events refused) by one answer: a 2xx batch answer may refuse
    some items (per-item errors, duplicates), which no valid, unique event should meet."""
    if not 200 <= status < 300:
        return 0, 0
    accepted = json.loads(data)["accepted"] if path.endswith("/batch") else 1
    return accepted, sent - accepted


def _stopped_by_parent():
    """Ctrl-C reaches the whole foreground group: the clients leave it to the parent, whose
    clean-up then ends them with SIGTERM at once (not through its own handler, inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _paced(interval, stop_at, send):
    """Call `send()` every `interval` seconds until `stop_at` (monotonic); returns how many
    times the schedule slipped (a request ended after its successor was due)."""
    slipped = 0
    next_at = time.monotonic() + random.uniform(0, interval)  # clients do not start in step
    while True:
        now = time.monotonic()
        if now >= stop_at:
            return slipped
        if next_at > now:
            time.sleep(min(next_at - now, stop_at - now))
            continue
        send()
        next_at += interval
        if next_at < time.monotonic():
            slipped += 1
            next_at = time.monotonic()


def sender(spec, t0, stop_at, results):
    """`spec["kind"]` is "batch" or "track"; one organisation's API key."""
    _stopped_by_parent()
    random.seed(spec["seed"])
    path = f"/api/v1/events/{spec['kind']}"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['key']}"}
    records, samples, new_users = [], [], [0]

    def send():
        now = datetime.now(UTC)
        if spec["kind"] == "batch":
            body, sent = {"events": [event(spec, new_users, now) for _ in range(BATCH)]}, BATCH
        else:
            body, sent = event(spec, new_users, now), 1
        payload = json.dumps(body).encode()
        at = time.monotonic() - t0
        started = time.perf_counter()
        try:
            status, data = post_json(spec["port"], path, payload, headers)
            count, refused = _accepted(path, status, data, sent)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            status, data, count, refused = 0, repr(exc).encode(), 0, 0
        latency = (time.perf_counter() - started) * 1000
        records.append(Record(at, f"POST {path[8:]}", status, latency, count, refused))
        if (refused or not 200 <= status < 300 and status != 429) and len(samples) < 5:
            samples.append(f"{status} {data[:ERROR_BODY_CHARS].decode(errors='replace')}")

    slipped = _paced(spec["interval"], stop_at, send)
    _finish(results, spec, records, samples, slipped)


def _finish(results, spec, records, samples, slipped):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put(
        {
            "client": spec["client"],
            "org": spec["org"],
            "records": records,
            "error_samples": samples,
            "slipped": slipped,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
    )


# --- dashboard readers -------------------------------------------------------------------


def jwt_login(base, email, password):
    """`(access, refresh)` from the API login, retrying a 429 after its Retry-After."""
    for _ in range(10):
        resp = requests.post(f"{base}/api/v1/auth/login", json={"username": email, "password": password}, timeout=30)
        if resp.status_code == 429:
            time.sleep(float(resp.headers.get("Retry-After", 5)))
            continue
        resp.raise_for_status()
        data = resp.json()
        return data["access_token"], data["refresh_token"]
    raise RuntimeError(f"API login for {email} kept answering 429")


def page_login(base, email, password):
    """A requests session signed in through the login page (CSRF token and all)."""
    session = requests.Session()
    for _ in range(10):
        form = session.get(f"{base}/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        if token is None:
            raise RuntimeError(f"no CSRF token on the login page (HTTP {form.status_code})")
        resp = session.post(
            f"{base}/login/",
            data={"username": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{base}/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if resp.status_code == 429:
            time.sleep(float(resp.headers.get("Retry-After", 5)))
            continue
        if resp.status_code != 302 or "sessionid" not in session.cookies:
            raise RuntimeError(f"page login for {email} answered {resp.status_code}: {resp.text[:ERROR_BODY_CHARS]}")
        return session
    raise RuntimeError(f"page login for {email} kept answering 429")


def reader_paths(known_users):
    """(label, path, kind) in the order a reader cycles through them: the analytics and
    insights APIs with the JWT, the main pages with the session."""
    user = user_id(random.randrange(known_users))
    feature = _feature()
    api = [
        ("usage-summary", "/api/v1/analytics/usage-summary"),
        ("feature-usage", "/api/v1/analytics/feature-usage"),
        ("timeseries", f"/api/v1/analytics/timeseries?metric=events&feature={feature}"),
        ("timeseries", "/api/v1/analytics/timeseries?metric=active_users&interval=week"),
        ("user-activity", "/api/v1/analytics/user-activity?days=7"),
        ("top-users", "/api/v1/analytics/top-users?limit=20"),
        ("retention", "/api/v1/analytics/retention?weeks=4"),
        ("funnel", f"/api/v1/analytics/funnel?steps={FUNNEL}"),
        ("users/<id>", f"/api/v1/analytics/users/{user}"),
        ("ai/anomalies", "/api/v1/ai/anomalies"),
        ("ai/usage-insights", "/api/v1/ai/usage-insights"),
        ("ai/chart-data", "/api/v1/ai/chart-data"),
        ("ai/usage-prediction", "/api/v1/ai/usage-prediction?days=7"),
    ]
    pages = ["/", "/features/", "/users/", "/retention/", f"/funnels/?steps={FUNNEL}", "/insights/"]
    paths = [(f"GET {label}", path, "api") for label, path in api]
    paths += [(f"GET {path.split('?')[0]}", path, "page") for path in pages]
    return paths


def reader(spec, t0, stop_at, results):
    _stopped_by_parent()
    random.seed(spec["seed"])
    base = f"http://127.0.0.1:{spec['port']}"
    access, refresh = jwt_login(base, spec["email"], spec["password"])
    token_at = time.monotonic()
    browser = page_login(base, spec["email"], spec["password"])
    api = requests.Session()
    records, samples = [], []
    step = [spec["client"]]  # readers start at different places in the cycle

    def send():
        nonlocal access, refresh, token_at
        if time.monotonic() - token_at > JWT_REFRESH_SECONDS:
            at, started = time.monotonic() - t0, time.perf_counter()
            resp = api.post(f"{base}/api/v1/auth/refresh", json={"refresh": refresh}, timeout=30)
            latency = (time.perf_counter() - started) * 1000
            records.append(Record(at, "POST auth/refresh", resp.status_code, latency, 0, 0))
            if resp.ok:
                access, refresh = resp.json()["access_token"], resp.json()["refresh_token"]
                token_at = time.monotonic()
        paths = reader_paths(spec["known_users"])
        label, path, kind = paths[step[0] % len(paths)]
        step[0] += 1
        session = api if kind == "api" else browser
        headers = {"Authorization": f"Bearer {access}"} if kind == "api" else {}
        at = time.monotonic() - t0
        started = time.perf_counter()
        try:
            resp = session.get(base + path, headers=headers, allow_redirects=False, timeout=120)
            status, body = resp.status_code, resp.text
        except requests.RequestException as exc:
            status, body = 0, repr(exc)
        records.append(Record(at, label, status, (time.perf_counter() - started) * 1000, 0, 0))
        if not 200 <= status < 300 and status != 429 and len(samples) < 5:
            samples.append(f"{label}: {status} {body[:ERROR_BODY_CHARS]}")

    slipped = _paced(spec["interval"], stop_at, send)
    _finish(results, spec, records, samples, slipped)
