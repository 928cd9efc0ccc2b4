"""How fast this machine is right now, in two numbers that depend on nothing of the platform:
a Python loop of 10 M additions and PostgreSQL counting 10 M rows of `generate_series`
(median of `--repeat` runs each). The shared 2-core VM of the bench drifts by 2× and more
between boots and hours; a figure in docs/benchmarks.md next to these two can be compared
with another taken at a different speed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/machine_speed.py
"""

import argparse
import os
import statistics
import time

import psycopg


def python_loop_seconds() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def postgres_count_seconds(url: str) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        conn.execute("SELECT count(*) FROM generate_series(1, 10000000)").fetchone()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    loops = [python_loop_seconds() for _ in range(args.repeat)]
    counts = [postgres_count_seconds(url) for _ in range(args.repeat)]
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"python loop of 10 M additions: {statistics.median(loops):.2f} s (median of {args.repeat})")
    print(f"postgresql count(*) of generate_series(1, 10 M): {statistics.median(counts):.2f} s")


if __name__ == "__main__":
    main()
