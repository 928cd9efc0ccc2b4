"""The soak's figures (see soak.py): per-endpoint counts, errors and latency, a per-minute
timeline, RSS growth per process, and the Markdown tables for docs/benchmarks.md."""

from collections import Counter, defaultdict

from harness import percentile

RSS_GROWTH_TARGET_PCT = 5.0
RSS_CHECKED_ROLES = ("gunicorn worker", "consumer")


def is_error(status):
    """Anything but a 2xx is an error, except 429 (the throttles are allowed to say no)."""
    return not 200 <= status < 300 and status != 429


def endpoints(records, warmup_s):
    """{endpoint: figures}: requests, errors and 429s over the whole run; latency over the
    measured part (after the warm-up)."""
    by_endpoint = defaultdict(list)
    for record in records:
        by_endpoint[record.endpoint].append(record)
    table = {}
    for name, rows in sorted(by_endpoint.items()):
        measured = [r.ms for r in rows if r.t >= warmup_s]
        statuses = Counter(r.status for r in rows)
        table[name] = {
            "requests": len(rows),
            "errors": sum(n for status, n in statuses.items() if is_error(status)),
            "throttled": statuses.get(429, 0),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "p50_ms": round(percentile(measured, 0.50), 1) if measured else None,
            "p99_ms": round(percentile(measured, 0.99), 1) if measured else None,
            "max_ms": round(max(measured), 1) if measured else None,
            "events_acknowledged": sum(r.acknowledged for r in rows),
            "events_refused": sum(r.refused for r in rows),
        }
    return table


def timeline(records, samples, duration, minute=60.0):
    """One row per minute of load: requests, errors, p50/p99 over every endpoint, and the
    last RSS / backlog sample of that minute (what starts or is sampled just after the end
    belongs to the last minute)."""
    last_minute = max(0, int((duration - 1e-6) // minute))
    rows = defaultdict(list)
    for record in records:
        rows[min(last_minute, int(record.t // minute))].append(record)
    last_sample = {}
    for sample in samples:
        last_sample[min(last_minute, int(sample["t"] // minute))] = sample
    out = []
    for index in sorted(rows):
        latencies = [r.ms for r in rows[index]]
        sample = last_sample.get(index, {})
        out.append(
            {
                "minute": index + 1,
                "requests": len(rows[index]),
                "errors": sum(1 for r in rows[index] if is_error(r.status)),
                "events_acknowledged": sum(r.acknowledged for r in rows[index]),
                "p50_ms": round(percentile(latencies, 0.50), 1),
                "p99_ms": round(percentile(latencies, 0.99), 1),
                "stream_backlog": sample.get("stream_backlog"),
                "rss_mib": {role: round(kib / 1024, 1) for role, kib in _by_role(sample.get("rss", {})).items()},
            }
        )
    return out


def _by_role(rss):
    """{role: total KiB} from {"role (pid N)": KiB}."""
    totals = Counter()
    for name, kib in rss.items():
        totals[name.split(" (pid")[0]] += kib or 0
    return dict(totals)


def rss_growth(baseline, end):
    """Per process present at both points: RSS then and now and the growth in %; processes
    that appeared or vanished in between (a worker restarted) are listed apart."""
    rows = []
    for name in sorted(baseline):
        if name in end and baseline[name] and end[name]:
            before, after = baseline[name], end[name]
            rows.append(
                {
                    "process": name,
                    "warm_mib": round(before / 1024, 1),
                    "end_mib": round(after / 1024, 1),
                    "growth_pct": round(100 * (after - before) / before, 2),
                }
            )
    changed = sorted(set(baseline) ^ set(end))
    return rows, changed


def verdicts(result):
    rss_checked = [r for r in result["rss"] if r["process"].startswith(RSS_CHECKED_ROLES)]
    worst = max((r["growth_pct"] for r in rss_checked), default=None)
    # Celery replaces a pool process past CELERY_WORKER_MAX_MEMORY_PER_CHILD by design.
    replaced = [name for name in result["processes_replaced"] if name.startswith(RSS_CHECKED_ROLES)]
    per_org = result["events"]["per_org"].values()
    return {
        "errors": result["totals"]["errors"] == 0 and result["events"]["refused"] == 0,
        "events_stored_equal_acknowledged": all(o["stored"] == o["acknowledged"] for o in per_org),
        "rss_growth_within_target": worst is not None and worst <= RSS_GROWTH_TARGET_PCT and not replaced,
        "worst_rss_growth_pct": worst,
    }


def _mark(ok):
    return "met" if ok else "**MISSED**"


def _setup_line(result):
    a, totals = result["args"], result["totals"]
    consumers = f", {a['consumers']} `consume_events`" if a["mode"] == "queue" else ""
    return (
        f"{a['duration']:g} s of load, {a['mode']} mode, gunicorn -w {a['workers']}{consumers}, a Celery worker; "
        f"{a['orgs']} organisations; {a['batch_clients']} clients sending a 1,000-event batch every "
        f"{a['batch_interval']:g} s, {a['track_clients']} sending {a['track_rate']:g} `track`/s, {a['readers']} "
        f"dashboard readers at {a['reader_rate']:g} requests/s; `analytics.rollup_today` every "
        f"{a['rollup_every']:g} s; RSS baseline after {a['warmup']:g} s. Achieved {totals['requests_per_s']:g} "
        f"requests/s, {totals['events_per_s']:,} events/s. Load average before: "
        f"{result['machine']['uptime_before'].split('load average: ')[-1]}, after: "
        f"{result['machine']['uptime_after'].split('load average: ')[-1]} (`nproc` {result['machine']['nproc']})."
    )


def markdown(result):
    totals, events, v = result["totals"], result["events"], result["verdicts"]
    lines = [
        _setup_line(result),
        "",
        "| endpoint | requests | errors | 429 | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in result["endpoints"].items():
        p50, p99, top = ("—" if x is None else x for x in (e["p50_ms"], e["p99_ms"], e["max_ms"]))
        lines.append(f"| `{name}` | {e['requests']:,} | {e['errors']} | {e['throttled']} | {p50} | {p99} | {top} |")
    lines.append(
        f"| **all** | **{totals['requests']:,}** | **{totals['errors']}** ({totals['error_rate_pct']} %) "
        f"| {totals['throttled']} | | | |"
    )
    lines += ["", "| process | RSS at warm-up end | RSS at the end | growth |", "|---|---|---|---|"]
    for r in result["rss"]:
        lines.append(f"| {r['process']} | {r['warm_mib']} MiB | {r['end_mib']} MiB | {r['growth_pct']:+.2f} % |")
    lines += ["", "| minute | requests | errors | p50 ms | p99 ms | stream backlog | RSS of the gunicorn workers |"]
    lines.append("|---|---|---|---|---|---|---|")
    for m in result["timeline"]:
        workers = m["rss_mib"].get("gunicorn worker", "")
        backlog = "—" if m["stream_backlog"] is None else m["stream_backlog"]
        lines.append(
            f"| {m['minute']} | {m['requests']:,} | {m['errors']} | {m['p50_ms']} | {m['p99_ms']} | {backlog} "
            f"| {workers} MiB |"
        )
    rollups, replaced = result["rollups"], result["processes_replaced"]
    failed, direct = totals["clients_failed"], totals["direct_writes_in_queue_mode"]
    lines += [
        "",
        f"Events acknowledged {events['acknowledged']:,}, stored {events['stored']:,} after "
        f"{events['drain_s']} s of drain ({_mark(v['events_stored_equal_acknowledged'])}); "
        f"refused in 2xx answers {events['refused']}; dead-lettered {events['dead_lettered']}. "
        f"Errors: {totals['errors']} of {totals['requests']:,} requests "
        f"(target 0: {_mark(v['errors'])})"
        + (f"; client processes that failed: {failed}" if failed else "")
        + f". Worst RSS growth of a gunicorn worker or consumer: {v['worst_rss_growth_pct']} % (target ≤ "
        f"{RSS_GROWTH_TARGET_PCT:g} %: {_mark(v['rss_growth_within_target'])})"
        + (f"; processes replaced during the run: {', '.join(replaced)}" if replaced else "")
        + f". Rollups: {rollups['count']} (the priming one included), {rollups['p50_s']} s median, "
        f"{rollups['max_s']} s max; task failures {rollups['failures']}. Error lines in the logs: "
        + ", ".join(f"{name} {n}" for name, n in result["log_errors"].items())
        + "."
        + (f" **Queue mode wrote {direct:,} ingestion requests directly** (200/201, not 202)." if direct else ""),
    ]
    return lines
