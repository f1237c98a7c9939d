"""Races repeated over many rounds: each worker has its own engine, as separate app
instances would, and all of them wait at a barrier before the racing call."""

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from core import admin, signin
from core.clock import SystemClock
from core.context import open_context
from core.errors import NotSignedIn
from core.models import (
    AuditEvent,
    AuthSession,
    CodeThrottle,
    Enrollment,
    EnrollmentStatus,
    User,
)
from core.signin import LIVE_STATUSES, Reason, Status
from core.verification import LOCK_AFTER_FAILURES
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    add_acme,
    code_at,
    code_challenge,
    enroll,
    password_only,
    start_enrollment,
)

ROUNDS = 24
SAM = "sam@acme.test"

# These races once deadlocked on PostgreSQL, when submit_code locked the
# code_throttle row before the enrollment and the admin actions the other way
# round. Both now lock the throttle row first.
LOCK_ORDER_DEADLOCK = pytest.mark.parametrize(
    "db_url", ["sqlite", "postgresql"], indirect=True
)


@pytest.fixture
def open_instances(db_url, clock, tmp_path):
    """Open app instances on the test's database, one engine each, and close them at the end."""
    opened = []

    def open_instances(count):
        instances = [
            open_context(
                db_url, clock=clock, key_file=tmp_path / "twofa.key", fast_hashing=True
            )
            for _ in range(count)
        ]
        opened.extend(instances)
        return instances

    yield open_instances
    for instance in opened:
        instance.close()


def race(calls, jitter=None):
    """Run each call in its own thread, all released at once by a barrier.

    ``jitter`` gives each call a delay in seconds after the barrier, so that
    seeded rounds vary which call reaches the database first.
    """
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)
    errors = []
    delays = jitter or [0.0] * len(calls)

    def worker(index):
        try:
            barrier.wait(timeout=30)
            if delays[index]:
                time.sleep(delays[index])
            results[index] = calls[index]()
        except Exception as error:  # raised below, so that a crash cannot pass
            name = getattr(calls[index], "func", calls[index]).__name__
            error.add_note(f"raised by {name} in worker {index}")
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        for other in errors[1:]:
            errors[0].add_note(f"also: {other!r}")
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results


def wrong_code(secret, now):
    """Return a well-formed code that matches no time step near ``now``."""
    nearby = {code_at(secret, now + offset * PERIOD) for offset in range(-6, 7)}
    candidate = int(code_at(secret, now))
    while f"{candidate:06d}" in nearby:
        candidate = (candidate + 1) % 1_000_000
    return f"{candidate:06d}"


def live_enrollments(ctx, username=None):
    query = select(Enrollment).where(Enrollment.status.in_(LIVE_STATUSES))
    if username is not None:
        query = query.join(User).where(User.username == username)
    with Session(ctx.engine) as session:
        return list(session.exec(query))


def failure_count(ctx, username):
    with Session(ctx.engine) as session:
        return session.exec(
            select(CodeThrottle.failures).join(User).where(User.username == username)
        ).one()


def audit_rows(ctx, event, at, target=None):
    """Return the audit rows of one event type written at second ``at``, oldest first."""
    query = select(AuditEvent).where(AuditEvent.event == event, AuditEvent.at == at)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    with Session(ctx.engine) as session:
        return list(session.exec(query.order_by(AuditEvent.id)))


def test_later_step_first_rejects_earlier(ctx, clock, open_instances):
    add_acme(ctx)
    secret = enroll(ctx, SAM)
    earlier_instance, later_instance = open_instances(2)
    seeded = random.Random(6238)
    orders = {"earlier first": 0, "later first": 0}

    for round_number in range(ROUNDS):
        clock.advance(3 * PERIOD)
        now = clock.now()
        later_step = now // PERIOD
        earlier_step = later_step - 1
        earlier_code = code_at(secret, earlier_step * PERIOD)
        later_code = code_at(secret, later_step * PERIOD)
        earlier_challenge = code_challenge(ctx, SAM)
        later_challenge = code_challenge(ctx, SAM)

        earlier, later = race(
            [
                partial(
                    signin.submit_code,
                    earlier_instance,
                    earlier_challenge,
                    earlier_code,
                ),
                partial(
                    signin.submit_code, later_instance, later_challenge, later_code
                ),
            ],
            jitter=[seeded.uniform(0, 0.004), seeded.uniform(0, 0.004)],
        )

        context = f"round {round_number}"
        assert later.status == Status.SIGNED_IN, (context, later)
        [stored] = live_enrollments(ctx, SAM)
        assert stored.last_step == later_step, context
        accepted = audit_rows(ctx, "code_accepted", now, SAM)
        offsets = [json.loads(row.detail)["offset"] for row in accepted]
        if earlier.status == Status.SIGNED_IN:
            orders["earlier first"] += 1
            # Both were accepted only because the earlier step committed first.
            assert offsets == [-1, 0], (context, offsets)
        else:
            orders["later first"] += 1
            assert earlier.status == Status.REJECTED, (context, earlier)
            assert earlier.reason == Reason.REPLAY, (context, earlier)
            assert offsets == [0], (context, offsets)
            [replay] = audit_rows(ctx, "replay_rejected", now, SAM)
            assert replay.id > accepted[0].id, context

    # Both orders must occur, or the race did not test the replay guard.
    assert orders["earlier first"] > 0, orders
    assert orders["later first"] > 0, orders


@LOCK_ORDER_DEADLOCK
def test_switch_off_during_confirmations(ctx, clock, open_instances):
    boss = add_acme(ctx, two_factor=False)
    users = ["ann", SAM, "rita"]
    switch_instance, *user_instances = open_instances(1 + len(users))
    confirmed = Counter()

    for round_number in range(ROUNDS):
        context = f"round {round_number}"
        clock.advance(PERIOD)
        switched_on = admin.set_two_factor(ctx, boss, "acme", True)
        assert switched_on.changed, context
        pending = [start_enrollment(ctx, username) for username in users]
        now = clock.now()

        calls = [partial(admin.set_two_factor, switch_instance, boss, "acme", False)]
        for instance, (challenge, secret) in zip(user_instances, pending, strict=True):
            code = code_at(secret, now)
            calls.append(partial(signin.submit_code, instance, challenge, code))
        switched_off, *confirmations = race(calls)

        assert switched_off.changed, context
        # Every user had a pending or active enrollment when the switch went off.
        assert switched_off.revoked == len(users), (context, switched_off)
        assert live_enrollments(ctx) == [], context
        for username, result in zip(users, confirmations, strict=True):
            confirmed[result.status] += 1
            assert result.status in (Status.SIGNED_IN, Status.REJECTED), (
                context,
                username,
                result,
            )
            # A confirmation that came too late finds its challenge cancelled,
            # the switch off, or (on PostgreSQL) the enrollment no longer pending.
            if result.status == Status.REJECTED:
                assert result.reason in (
                    Reason.SIGN_IN_EXPIRED,
                    Reason.ENROLLMENT_CHANGED,
                    Reason.REPLAY,
                ), (context, username, result)
        # With the switch off, a user signs in with the password alone.
        assert signin.current_user(ctx, password_only(ctx, SAM)).with_code is False

    # Confirmations both before and after the switch must occur, or the rounds
    # did not race.
    assert confirmed[Status.SIGNED_IN] > 0, confirmed
    assert confirmed[Status.REJECTED] > 0, confirmed


@LOCK_ORDER_DEADLOCK
def test_reset_during_sign_in(ctx, clock, open_instances):
    # The session that turned the switch on stays valid.
    boss = add_acme(ctx)
    ann_secret = enroll(ctx, "ann")
    clock.advance(PERIOD)
    ann_signed_in = signin.submit_code(
        ctx, code_challenge(ctx, "ann"), code_at(ann_secret, clock.now())
    )
    assert ann_signed_in.status == Status.SIGNED_IN, ann_signed_in
    ann_session = ann_signed_in.session
    [ann_enrollment] = live_enrollments(ctx, "ann")
    reset_instance, sign_in_instance = open_instances(2)
    seeded = random.Random(1977)
    outcomes = {"sign-in failed": 0, "sign-in ended by reset": 0}

    for round_number in range(ROUNDS):
        context = f"round {round_number}"
        clock.advance(PERIOD)
        secret = enroll(ctx, SAM)
        clock.advance(PERIOD)
        challenge = code_challenge(ctx, SAM)
        code = code_at(secret, clock.now())

        reset, sign_in = race(
            [
                partial(admin.reset_enrollment, reset_instance, boss, "acme", SAM),
                partial(signin.submit_code, sign_in_instance, challenge, code),
            ],
            jitter=[seeded.uniform(0, 0.004), seeded.uniform(0, 0.004)],
        )

        assert reset.revoked == 1, (context, reset)
        assert live_enrollments(ctx, SAM) == [], context
        if sign_in.status == Status.SIGNED_IN:
            outcomes["sign-in ended by reset"] += 1
            with pytest.raises(NotSignedIn):
                signin.current_user(ctx, sign_in.session)
            [signed_in] = audit_rows(ctx, "signed_in", clock.now(), SAM)
            [reset_row] = audit_rows(ctx, "enrollment_reset", clock.now(), SAM)
            assert signed_in.id < reset_row.id, context
        else:
            outcomes["sign-in failed"] += 1
            assert sign_in.status == Status.REJECTED, (context, sign_in)
            # The reset cancelled the challenge or revoked the enrollment first.
            assert sign_in.reason in (
                Reason.SIGN_IN_EXPIRED,
                Reason.ENROLLMENT_CHANGED,
            ), (context, sign_in)
            assert audit_rows(ctx, "signed_in", clock.now(), SAM) == [], context
        assert open_sessions(ctx, SAM) == 0, context

        # Nobody else is affected: Ann keeps her enrollment and session, the
        # Master Admin keeps theirs.
        [ann_now] = live_enrollments(ctx, "ann")
        assert ann_now.id == ann_enrollment.id, context
        assert ann_now.status == EnrollmentStatus.ACTIVE, context
        assert signin.current_user(ctx, ann_session).username == "ann", context
        assert signin.current_user(ctx, boss).username == "boss", context

    # Both outcomes must occur, or the rounds did not race.
    assert outcomes["sign-in failed"] > 0, outcomes
    assert outcomes["sign-in ended by reset"] > 0, outcomes


def backends_waiting_for_locks(ctx):
    with ctx.engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


def wait_for_waiting_backends(ctx, count):
    deadline = time.monotonic() + 10
    while backends_waiting_for_locks(ctx) < count:
        assert time.monotonic() < deadline, (
            f"{count} backend(s) never waited for a lock"
        )
        time.sleep(0.01)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("action", ["reset", "switch off"])
def test_staged_admin_action_and_code_check(ctx, clock, open_instances, action):
    """Stage the interleaving that the races above hit by chance on PostgreSQL.

    A third transaction locks Sam's enrollment row, so that the admin action
    queues on it first and the code check second, while the code check
    already holds Sam's code_throttle row. When the third transaction ends,
    both must still complete. SQLite takes its write lock at BEGIN, so it has
    no row locks to stage.
    """
    boss = add_acme(ctx, two_factor=True)
    if action == "reset":
        secret = enroll(ctx, SAM)
        clock.advance(PERIOD)
        challenge = code_challenge(ctx, SAM)
    else:
        challenge, secret = start_enrollment(ctx, SAM)
    code = code_at(secret, clock.now())
    [enrollment] = live_enrollments(ctx, SAM)
    admin_instance, code_instance = open_instances(2)
    admin_call = (
        partial(admin.reset_enrollment, admin_instance, boss, "acme", SAM)
        if action == "reset"
        else partial(admin.set_two_factor, admin_instance, boss, "acme", False)
    )
    results = {}
    errors = []

    def run(name, call):
        try:
            results[name] = call()
        except Exception as error:  # raised below
            errors.append(error)

    with ctx.engine.connect() as lock_holder:
        lock_holder.execute(
            select(Enrollment.id)
            .where(Enrollment.id == enrollment.id)
            .with_for_update()
        )
        admin_thread = threading.Thread(target=run, args=("admin", admin_call))
        admin_thread.start()
        wait_for_waiting_backends(ctx, 1)
        code_call = partial(signin.submit_code, code_instance, challenge, code)
        code_thread = threading.Thread(target=run, args=("code", code_call))
        code_thread.start()
        wait_for_waiting_backends(ctx, 2)
        lock_holder.commit()
    admin_thread.join(timeout=60)
    code_thread.join(timeout=60)

    if errors:
        raise errors[0]
    assert results["admin"].revoked == 1, results["admin"]
    assert live_enrollments(ctx, SAM) == []
    if results["code"].status == Status.SIGNED_IN:
        with pytest.raises(NotSignedIn):
            signin.current_user(ctx, results["code"].session)


def open_sessions(ctx, username):
    with Session(ctx.engine) as session:
        return len(
            session.exec(
                select(AuthSession.id)
                .join(User)
                .where(User.username == username, AuthSession.ended_at.is_(None))
            ).all()
        )


def test_concurrent_wrong_codes_counted_exactly(ctx, clock, open_instances):
    add_acme(ctx)
    secret = enroll(ctx, SAM)
    instances = open_instances(LOCK_AFTER_FAILURES - 1)

    for round_number in range(ROUNDS):
        count = 2 + round_number % (LOCK_AFTER_FAILURES - 2)  # 2, 3 or 4
        context = f"round {round_number} with {count} wrong codes"
        clock.advance(2 * PERIOD)
        now = clock.now()
        wrong = wrong_code(secret, now)
        challenges = [code_challenge(ctx, SAM) for _ in range(count)]

        results = race(
            [
                partial(signin.submit_code, instance, challenge, wrong)
                for instance, challenge in zip(
                    instances[:count], challenges, strict=True
                )
            ]
        )

        statuses = [result.status for result in results]
        assert statuses == [Status.REJECTED] * count, (context, statuses)
        # Each check saw the failures of those before it: 1, 2, ... count.
        assert sorted(result.failures for result in results) == list(
            range(1, count + 1)
        ), context
        assert failure_count(ctx, SAM) == count, context
        assert len(audit_rows(ctx, "code_rejected", now, SAM)) == count, context

        # A right code clears the count for the next round.
        right = signin.submit_code(ctx, code_challenge(ctx, SAM), code_at(secret, now))
        assert right.status == Status.SIGNED_IN, (context, right)
        assert failure_count(ctx, SAM) == 0, context


# Each round leaves CLI_PROCESSES - 1 replays, which stay below the lock.
CLI_PROCESSES = LOCK_AFTER_FAILURES - 1
CLI_ROUNDS = 3
CODE_PROMPT = "Enter the code from your authenticator app."


def cli_environment(tmp_path, db_url):
    """Return the environment for `twofa` on the test's database and key file."""
    environment = dict(os.environ)
    environment.pop("TWOFA_DATABASE_URL", None)
    environment.pop("TWOFA_SECRET_KEY", None)
    # The SQLite file of db_url and the key file are both in tmp_path.
    environment["TWOFA_DATA_DIR"] = str(tmp_path)
    if not db_url.startswith("sqlite"):
        environment["TWOFA_DATABASE_URL"] = db_url
    return environment


def start_logins(environment, count):
    """Start `twofa login` for Sam in ``count`` processes, give each the password, and
    wait until every one prompts for the code."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "core.cli", "login", "acme", SAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(count)
    ]
    for process in processes:
        process.stdin.write(PASSWORDS[SAM] + "\n")
        process.stdin.flush()
    for process in processes:
        printed = []
        for line in process.stderr:
            printed.append(line)
            if line.strip() == CODE_PROMPT:
                break
        else:
            for started in processes:
                started.kill()
                started.wait()
            pytest.fail(f"twofa login ended before asking for a code: {printed}")
    return processes


def test_cli_logins_race_one_code(db_url, tmp_path):
    """Several `twofa login` processes get the same code at once: one signs in."""
    environment = cli_environment(tmp_path, db_url)
    ctx = open_context(
        db_url,
        clock=SystemClock(),
        key_file=tmp_path / "twofa.key",
        fast_hashing=True,
    )
    try:
        add_acme(ctx)
        challenge, secret = start_enrollment(ctx, SAM)
        # A code of the previous time step, as typed slowly, so that the rounds
        # below can start at the current step.
        first_step = ctx.now() // PERIOD
        confirmed = signin.submit_code(
            ctx, challenge, code_at(secret, (first_step - 1) * PERIOD)
        )
        assert confirmed.status == Status.SIGNED_IN, confirmed

        # Each round needs a step after the last accepted one. A round that
        # starts within the step of the round before takes the code of the next
        # step, as a phone whose clock runs ahead would show it. The window and
        # drift tracking accept up to four steps ahead, more than CLI_ROUNDS.
        step = first_step - 1
        for round_number in range(CLI_ROUNDS):
            context = f"round {round_number}"
            processes = start_logins(environment, CLI_PROCESSES)
            step = max(step + 1, ctx.now() // PERIOD)
            code = code_at(secret, step * PERIOD)
            for process in processes:
                process.stdin.write(code + "\n")
                process.stdin.flush()
            for process in processes:
                process.stdin.close()
            finished = [
                (process.wait(timeout=60), process.stdout.read(), process.stderr.read())
                for process in processes
            ]
            for process in processes:
                process.stdout.close()
                process.stderr.close()

            statuses = sorted(status for status, _, _ in finished)
            assert statuses == [0] + [1] * (CLI_PROCESSES - 1), (context, finished)
            [winner] = [output for status, output, _ in finished if status == 0]
            assert f"Signed in as {SAM!r}" in winner, (context, winner)
            for status, _, errors in finished:
                if status == 1:
                    assert "no authentication code was given" in errors, (
                        context,
                        errors,
                    )
            [stored] = live_enrollments(ctx, SAM)
            assert stored.last_step == step, context
    finally:
        ctx.close()
