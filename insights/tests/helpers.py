"""Test data for insights: rollup rows shaped like the analytics rollup writes them, raw
events with known segments for the explanations, and a tiny HTTP server on localhost
(ports 8500–8599) standing in for Gemini or a webhook receiver."""

import json
import socket
import threading
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from analytics.models import DailyFeatureUsage, DailyOrgUsage
from telemetry.models import EndUser, Feature, UsageEvent

PORTS = range(8500, 8600)


def features_make(org, n, prefix="feature"):
    Feature.objects.bulk_create(
        [Feature(organization=org, key=f"{prefix}-{i}", name=f"{prefix.title()} {i}") for i in range(n)]
    )
    return list(Feature.objects.filter(organization=org, key__startswith=f"{prefix}-").order_by("id"))


def rollups_make(org, features, *, end, days, level=200.0, seed=1, spikes=None, with_org=True):
    """Weekday-seasonal daily counts with a little noise for each feature over the `days`
    days ending at `end`; `spikes` = {(feature_index, day): factor} multiplies a day."""
    rng = np.random.default_rng(seed)
    profile = [1.0, 1.1, 1.1, 1.05, 0.95, 0.6, 0.5]
    spikes = spikes or {}
    rows, org_rows = [], []
    start = end - timedelta(days=days - 1)
    for offset in range(days):
        day = start + timedelta(days=offset)
        total = 0
        for index, feature in enumerate(features):
            mean = level * (1 + index * 0.5) * profile[day.weekday()]
            count = int(rng.poisson(mean * np.exp(rng.normal(0, 0.05))))
            count = int(round(count * spikes.get((index, day), 1.0)))
            users = max(1, count // 3)
            sessions = max(1, count // 2)
            duration = 120.0 + index * 10 + float(rng.normal(0, 3))
            total += count
            rows.append(
                DailyFeatureUsage(
                    organization=org,
                    feature=feature,
                    date=day,
                    event_count=count,
                    daily_active_users=users,
                    sessions=sessions,
                    total_session_duration=duration * sessions,
                    avg_session_duration=duration,
                )
            )
        if with_org:
            org_rows.append(
                DailyOrgUsage(
                    organization=org,
                    date=day,
                    event_count=total,
                    active_users=max(1, total // 4),
                    sessions=total // 2,
                    timed_events=total,
                    total_session_duration=125.0 * total,
                    avg_session_duration=125.0,
                )
            )
    DailyFeatureUsage.objects.bulk_create(rows)
    DailyOrgUsage.objects.bulk_create(org_rows)
    return start


def end_users_make(org, n=12, prefix="person"):
    """`n` end users: genders alternate F, M; ages cycle 15, 30, 50 (one per age band);
    the first half on plan "free", the rest on "pro"."""
    EndUser.objects.bulk_create(
        [
            EndUser(
                organization=org,
                external_id=f"{prefix}-{i}",
                gender="FM"[i % 2],
                age=(15, 30, 50)[i % 3],
                properties={"plan": "free" if i < n // 2 else "pro"},
            )
            for i in range(n)
        ]
    )
    return list(EndUser.objects.filter(organization=org, external_id__startswith=f"{prefix}-").order_by("id"))


def events_make(org, feature, users, *, days, per_day, event_type="view", duration=100.0, metadata=None):
    """`per_day` events of `feature` on each of `days`, by `users` in turn, spread over
    each day's hours."""
    rows = []
    for day in days:
        start = datetime.combine(day, time(0, 30), tzinfo=UTC)
        for i in range(per_day):
            rows.append(
                UsageEvent(
                    organization=org,
                    feature=feature,
                    end_user=users[i % len(users)],
                    event_type=event_type,
                    session_duration=duration,
                    metadata=dict(metadata or {"source": "test"}),
                    timestamp=start + timedelta(minutes=(i * 997) % 1380),
                )
            )
    UsageEvent.objects.bulk_create(rows)


def same_weekdays_before(day, weeks=6):
    return [day - timedelta(weeks=k) for k in range(1, weeks + 1)]


def yesterday():
    return date.today() - timedelta(days=1)


def free_port():
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8500-8599")


class StubServer:
    """Answers each POST with the next (status, body, delay) of `responses` (the last one
    repeats) and records every request: (path, headers, body bytes)."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                server.requests.append((self.path, dict(self.headers), body))
                index = min(len(server.requests), len(server.responses)) - 1
                status, payload, delay = server.responses[index]
                if delay:
                    threading.Event().wait(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
