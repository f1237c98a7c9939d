"""Measure committed code verifications under concurrency, on PostgreSQL and SQLite.

Each worker is a thread with its own engine and its own simulated clock, and
checks the codes of its own enrolled user with ``verification.verify_for_user``
(read, throttle, replay UPDATE, audit INSERT, COMMIT). Every verification
must be accepted. The same run measures 1, 4 and 8 workers on both databases.

    python benchmarks/concurrent_verify.py --postgres-url postgresql+psycopg://...

Without ``--postgres-url`` the script reads TWOFA_TEST_POSTGRES_URL; it creates
and drops a database of its own on that server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from core import admin, signin, totp
from core.clock import ManualClock
from core.context import Context, open_context
from core.verification import verify_for_user

START = 1_800_000_000
PERIOD = totp.DEFAULT_PERIOD
PORTAL = "bench"
PASSWORD = "benchmark-password"
WORKER_COUNTS = (1, 4, 8)


def enroll_users(url: str, key: bytes, count: int) -> list[tuple[int, bytes]]:
    """Create a portal with ``count`` enrolled users; return (user id, secret) pairs."""
    clock = ManualClock(START)
    ctx = open_context(url, clock=clock, key=key, fast_hashing=True)
    admin.create_portal(ctx, PORTAL, "Benchmark Billing")
    admin.add_user(ctx, PORTAL, "boss", PASSWORD, "master-admin")
    boss = signin.submit_password(ctx, PORTAL, "boss", PASSWORD).session
    users = []
    for index in range(count):
        username = f"worker{index}"
        user_id = admin.add_user(ctx, PORTAL, username, PASSWORD, "standard", boss)
        users.append((username, user_id))
    admin.set_two_factor(ctx, boss, PORTAL, True)

    enrolled = []
    for username, user_id in users:
        started = signin.submit_password(ctx, PORTAL, username, PASSWORD)
        offer = signin.enrollment_offer(ctx, started.challenge)
        secret = totp.decode_secret(offer.grouped_secret)
        done = signin.submit_code(
            ctx, started.challenge, totp.totp(secret, clock.now())
        )
        if done.status != signin.Status.SIGNED_IN:
            raise RuntimeError(f"enrollment of {username} failed: {done.message}")
        enrolled.append((user_id, secret))
    ctx.close()
    return enrolled


def run_case(
    url: str,
    key: bytes,
    users: list[tuple[int, bytes]],
    workers: int,
    seconds: float,
    start: int,
) -> dict[str, float]:
    """Run ``workers`` threads for ``seconds``; their clocks begin at ``start``, after
    every time step that an earlier case used."""
    contexts: list[Context] = [
        open_context(url, clock=ManualClock(start), key=key, fast_hashing=True)
        for _ in range(workers)
    ]
    latencies: list[list[int]] = [[] for _ in range(workers)]
    rejected = [0] * workers
    barrier = threading.Barrier(workers + 1)
    stop = threading.Event()

    def work(index: int) -> None:
        ctx = contexts[index]
        user_id, secret = users[index]
        barrier.wait()
        while not stop.is_set():
            ctx.clock.advance(PERIOD)
            code = totp.totp(secret, ctx.clock.now())
            started = time.perf_counter_ns()
            verdict = verify_for_user(ctx, user_id, code)
            latencies[index].append(time.perf_counter_ns() - started)
            rejected[index] += not verdict.accepted

    threads = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for ctx in contexts:
        ctx.close()

    samples = sorted(sample for worker in latencies for sample in worker)
    if sum(rejected):
        raise RuntimeError(f"{sum(rejected)} verifications were rejected")
    return {
        "workers": workers,
        "verifications": len(samples),
        "per_second": len(samples) / elapsed,
        "p50_us": statistics.median(samples) / 1000,
        "p99_us": samples[int(len(samples) * 0.99) - 1] / 1000,
    }


def measure(label: str, url: str, seconds: float) -> list[dict[str, float]]:
    key = Fernet.generate_key()
    users = enroll_users(url, key, max(WORKER_COUNTS))
    results = []
    for case, workers in enumerate(WORKER_COUNTS, start=1):
        # 10^8 s (about three years) per case is more steps than any case uses.
        start = START + case * 100_000_000
        result = run_case(url, key, users, workers, seconds, start)
        result["database"] = label
        results.append(result)
        print(
            f"| {label} | {workers} | {result['per_second']:.0f} | "
            f"{result['p50_us']:.0f} | {result['p99_us']:.0f} |",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres-url", default=os.environ.get("TWOFA_TEST_POSTGRES_URL")
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="measured seconds per case (default 10)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("artifacts/concurrent_verify.json")
    )
    args = parser.parse_args(argv)
    if not args.postgres_url:
        parser.error("give --postgres-url or set TWOFA_TEST_POSTGRES_URL")

    print("| database | workers | verifications/s | p50 µs | p99 µs |")
    print("|---|---:|---:|---:|---:|")
    results = []
    with tempfile.TemporaryDirectory(prefix="concurrent-verify-") as folder:
        results += measure(
            "SQLite", f"sqlite:///{Path(folder) / 'bench.sqlite3'}", args.seconds
        )

    admin_engine = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"twofa_bench_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_engine.url.set(database=name).render_as_string(hide_password=False)
        results += measure("PostgreSQL", url, args.seconds)
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "seconds_per_case": args.seconds,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
