"""The `compat` scenario of bench/ingest.py: the SDK-compatible routes against the native batch
endpoint, on one server in the same run.

Variants (each 1,000 events per request, the same events as the native scenarios' batches):
- native:        POST /api/v1/events/batch, JSON, `Authorization: Bearer`;
- native-gzip:   the same, `Content-Encoding: gzip`;
- posthog:       POST /batch/ as posthog-python sends it (`api_key` in the body, `sent_at`);
- posthog-gzip:  the same, gzipped (posthog-python's `gzip=True`);
- segment:       POST /v1/batch as analytics-python sends it (HTTP Basic `writeKey:`, `sentAt`);
- rudder-gzip:   the same, gzipped (RudderStack's default).

The variants run one after the other, round after round (`--compat-rounds`), each round
starting further along the list, so a change of the machine's load (two cores shared with
whatever else runs) and the growing events table hit them alike; the report gives the median
of each, its ratio to native (target ≥ 90 %) overall and round by round, and the CPU the app spent
per 1,000 events, which load changes much less. Every request has its own uuids (or message
ids), so nothing is skipped as a duplicate; gzipped bodies are compressed before the clock
starts (level 6), so the clients' compression does not take CPU from the server.
"""

import base64
import gzip
import json
import multiprocessing as mp
import statistics
import time
from datetime import UTC, datetime

from harness import load_summary, log, post_loop

BATCH = 1000
PREFIX = "PPPPPPPP"  # replaced by a unique 8-hex-digit uuid prefix in every request
VARIANTS = ("native", "native-gzip", "posthog", "posthog-gzip", "segment", "rudder-gzip")
TARGET_RATIO = 0.90


def _uuid(tag, i):
    # The request's own part (PREFIX) last: a batch's uuids spread over the whole unique
    # index, as the random uuids SDKs send do (and Segment's uuid5 of message ids). With the
    # request's part first they would land side by side, which flatters whatever uses them.
    return f"{i:04x}{tag:04x}-0000-4000-8000-0000{PREFIX}"


def _rows(distinct_users):
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    for i in range(BATCH):
        yield i, now, f"feature_{i % 50}", f"bench_user_{i % distinct_users}", f"bench-session-{i % 100}"


def native_body(tag, distinct_users):
    events = [
        {
            "uuid": _uuid(tag, i),
            "feature": feature,
            "user_id": user,
            "event_type": "interaction",
            "session_id": session,
            "session_duration": 60 + i % 240,
            "timestamp": now,
            "metadata": {"source": "bench", "plan": "pro", "n": i},
        }
        for i, now, feature, user, session in _rows(distinct_users)
    ]
    return json.dumps({"events": events})


def posthog_body(tag, distinct_users, key):
    events = [
        {
            "event": feature,
            "distinct_id": user,
            "uuid": _uuid(tag, i),
            "timestamp": now,
            "properties": {"$session_id": session, "source": "bench", "plan": "pro", "n": i, "$lib": "posthog-python"},
        }
        for i, now, feature, user, session in _rows(distinct_users)
    ]
    return json.dumps({"batch": events, "historical_migration": False, "sent_at": _now(), "api_key": key})


def segment_body(tag, distinct_users):
    messages = [
        {
            "type": "track",
            "event": feature,
            "userId": user,
            "messageId": _uuid(tag, i),
            "timestamp": now,
            "properties": {"source": "bench", "plan": "pro", "n": i},
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}, "sessionId": session},
            "integrations": {},
        }
        for i, now, feature, user, session in _rows(distinct_users)
    ]
    return json.dumps({"batch": messages, "sentAt": _now()})


def _now():
    return datetime.now(UTC).isoformat()


def variant_request(variant, tag, key, distinct_users):
    """(path, headers, body template with PREFIX, gzip?) of one variant."""
    family, _, encoding = variant.partition("-")
    headers = {"Content-Type": "application/json"}
    if family == "native":
        path, body = "/api/v1/events/batch", native_body(tag, distinct_users)
        headers["Authorization"] = f"Bearer {key}"
    elif family == "posthog":
        path, body = "/batch/", posthog_body(tag, distinct_users, key)
    else:
        path, body = "/v1/batch", segment_body(tag, distinct_users)
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if encoding == "gzip":
        headers["Content-Encoding"] = "gzip"
    return path, headers, body, encoding == "gzip"


def _bodies(template, client_id, count, compress, start=0):
    for n in range(start, start + count):
        body = template.replace(PREFIX, f"{client_id:02x}{n:06x}").encode()
        yield gzip.compress(body, compresslevel=6) if compress else body


class _Payloads:
    """The bodies prepared before the clock starts, then (more requests than prepared) each
    built when it is sent, on the clock: `built_on_the_clock` says how many."""

    def __init__(self, template, client_id, prepared, compress):
        self.template, self.client_id, self.compress = template, client_id, compress
        self.bodies = list(_bodies(template, client_id, prepared, compress))
        self.sent = 0

    def __iter__(self):
        return self

    def __next__(self):
        n, self.sent = self.sent, self.sent + 1
        if n < len(self.bodies):
            return self.bodies[n]
        return next(_bodies(self.template, self.client_id, 1, self.compress, start=n))

    @property
    def built_on_the_clock(self):
        return max(0, self.sent - len(self.bodies))


def _client(client_id, port, request, prepared, ready, times, results):
    """Prepare the bodies, meet the others at the barrier twice (prepared; clock set), then
    send until `times[1]`, counting only what is answered after `times[0]` (warm-up)."""
    path, headers, template, compress = request
    payloads = _Payloads(template, client_id, prepared, compress)
    ready.wait()
    ready.wait()
    figures = post_loop(port, path, headers, payloads, warmup_until=times[0], stop_at=times[1])
    results.put({**figures, "over_prepared": payloads.built_on_the_clock})


def load_variant(port, request, *, clients, duration, warmup=3.0, prepared=400):
    """`clients` processes prepare their bodies, then send for warm-up + duration."""
    results = mp.Queue()
    ready = mp.Barrier(clients + 1)
    times = mp.Array("d", 2)
    procs = [
        mp.Process(target=_client, args=(i + 1, port, request, prepared, ready, times, results)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    ready.wait()  # every client has its bodies
    start = time.monotonic() + 0.2
    times[0], times[1] = start + warmup, start + warmup + duration
    ready.wait()
    parts = [results.get(timeout=duration + warmup + 300) for _ in procs]
    for p in procs:
        p.join()
    return {**load_summary(parts, duration), "bodies_built_on_the_clock": sum(p["over_prepared"] for p in parts)}


def scenario_compat(name, env, port, args, *, server_cls, setup, count, cpu_meter, var):
    """Every variant, round after round, against one gunicorn; returns the figures and the
    median of each variant with its ratio to native."""
    key = setup["key"]
    tag = 0x100
    rounds = {variant: [] for variant in VARIANTS}
    before = count()
    with server_cls(name, env, port, args.workers, var) as server:
        for round_no in range(args.compat_rounds):
            # Each round starts further along the list: the events table and its uuid index
            # grow through the run, and a fixed order would always measure native first and
            # the Segment variants last, on the biggest table.
            shift = round_no * len(VARIANTS) // args.compat_rounds
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                tag += 1
                request = variant_request(variant, tag, key, args.distinct_users)
                meter = cpu_meter([server.proc.pid]).start()
                result = load_variant(port, request, clients=args.clients, duration=args.duration)
                result.update(meter.stop())
                done = result["accepted_incl_warmup"]
                if done:
                    result["app_cpu_ms_per_1000_events"] = round(1e6 * result["app_cpu_s"] / done, 1)
                    result["db_cpu_ms_per_1000_events"] = round(1e6 * result["db_cpu_s"] / done, 1)
                rounds[variant].append(result)
                log(
                    f"{name} round {round_no + 1} {variant}: {result['events_per_s']:,.0f} events/s, "
                    f"p50 {result['p50_ms']:.0f} ms, app CPU {result.get('app_cpu_ms_per_1000_events', 0):,.1f} "
                    f"ms/1,000 events, statuses {result['statuses']}, load {result['load_average_after']}"
                )
    stored = count() - before
    accepted = sum(r["accepted_incl_warmup"] for runs in rounds.values() for r in runs)
    summary = {}
    for variant, runs in rounds.items():
        rate = statistics.median(r["events_per_s"] for r in runs)
        cpu = statistics.median(r.get("app_cpu_ms_per_1000_events", float("nan")) for r in runs)
        summary[variant] = {"events_per_s": rate, "app_cpu_ms_per_1000_events": cpu}
    native = summary["native"]
    for variant, figures in summary.items():
        figures["vs_native"] = figures["events_per_s"] / native["events_per_s"] if native["events_per_s"] else None
        # The same ratio round by round (each round's variants ran minutes apart, on a table
        # of about the same size): what the machine's drift between rounds does not move.
        figures["vs_native_per_round"] = [
            r["events_per_s"] / n["events_per_s"] for r, n in zip(rounds[variant], rounds["native"], strict=True)
        ]
        figures["cpu_vs_native"] = native["app_cpu_ms_per_1000_events"] / figures["app_cpu_ms_per_1000_events"]
    log(f"{name}: stored {stored:,} = accepted {accepted:,}: {stored == accepted}")
    return {"rounds": rounds, "summary": summary, "stored": stored, "accepted": accepted}


def report_lines(name, result):
    lines = []
    for variant, figures in result["summary"].items():
        line = (
            f"{name} {variant}: {figures['events_per_s']:,.0f} events/s (median), app CPU "
            f"{figures['app_cpu_ms_per_1000_events']:,.1f} ms per 1,000 events"
        )
        if variant != "native":
            ok = "MET" if figures["vs_native"] >= TARGET_RATIO else "NOT MET"
            line += (
                f"; {figures['vs_native']:.0%} of native events/s (target ≥ 90 %: {ok}), "
                f"native's CPU per event / this one's: {figures['cpu_vs_native']:.0%}; round by round: "
                + ", ".join(f"{ratio:.0%}" for ratio in figures["vs_native_per_round"])
            )
        lines.append(line)
    return lines
