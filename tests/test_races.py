"""Replay under concurrency: several app instances, one engine each, check one code at once."""

import threading

from sqlmodel import Session, select

from core import signin
from core.context import open_context
from core.models import CodeThrottle, Enrollment, User
from core.signin import Status
from core.verification import LOCK_AFTER_FAILURES
from tests.helpers import PASSWORDS, PERIOD, add_acme, code_at, enroll

WORKERS = 16


def run_at_barrier(count, work):
    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []

    def worker(index):
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as error:  # reported below, so a crash cannot pass silently
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_same_code_from_sixteen_instances_is_accepted_once(
    ctx, clock, db_url, tmp_path
):
    key_file = tmp_path / "twofa.key"
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    instances = [
        open_context(db_url, clock=clock, key_file=key_file, fast_hashing=True)
        for _ in range(WORKERS)
    ]
    challenges = [
        signin.submit_password(
            instance, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
        ).challenge
        for instance in instances
    ]
    code = code_at(secret, clock.now())

    results = run_at_barrier(
        WORKERS,
        lambda index: signin.submit_code(instances[index], challenges[index], code),
    )

    statuses = [result.status for result in results]
    assert statuses.count(Status.SIGNED_IN) == 1, statuses
    # The others are replays, checked one after another: after five, code entry locks.
    assert (
        statuses.count(Status.REJECTED) + statuses.count(Status.LOCKED) == WORKERS - 1
    )
    with Session(ctx.engine) as session:
        last_step = session.exec(select(Enrollment.last_step)).one()
        failures = session.exec(
            select(CodeThrottle.failures)
            .join(User)
            .where(User.username == "sam@acme.test")
        ).one()
    assert last_step == clock.now() // PERIOD
    assert failures == LOCK_AFTER_FAILURES
    for instance in instances:
        instance.close()


def test_concurrent_wrong_codes_are_all_counted(ctx, clock, db_url, tmp_path):
    key_file = tmp_path / "twofa.key"
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    count = 4  # below the lock threshold, so every attempt is checked
    instances = [
        open_context(db_url, clock=clock, key_file=key_file, fast_hashing=True)
        for _ in range(count)
    ]
    challenges = [
        signin.submit_password(
            i, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
        ).challenge
        for i in instances
    ]
    right = code_at(secret, clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    run_at_barrier(
        count,
        lambda index: signin.submit_code(instances[index], challenges[index], wrong),
    )

    with Session(ctx.engine) as session:
        failures = session.exec(
            select(CodeThrottle.failures)
            .join(User)
            .where(User.username == "sam@acme.test")
        ).one()
    assert failures == count
    for instance in instances:
        instance.close()
