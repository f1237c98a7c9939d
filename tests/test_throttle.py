"""Throttling: wrong codes lock code entry for a doubling time, across sign-in attempts."""

from sqlmodel import Session, select

from core import admin, signin
from core.audit import Event
from core.models import AuditEvent, CodeThrottle, User
from core.signin import Reason, Status
from core.verification import lock_seconds
from tests.helpers import PASSWORDS, PERIOD, add_acme, code_at, code_challenge, enroll


def wrong_code(secret, now):
    right = code_at(secret, now)
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


def throttle_of(ctx, username):
    with Session(ctx.engine) as session:
        return session.exec(
            select(CodeThrottle).join(User).where(User.username == username)
        ).one()


def test_lock_doubles_from_thirty_seconds_up_to_fifteen_minutes():
    assert [lock_seconds(n) for n in range(1, 5)] == [0, 0, 0, 0]
    assert [lock_seconds(n) for n in range(5, 12)] == [30, 60, 120, 240, 480, 900, 900]
    assert lock_seconds(10_000) == 900


def test_five_wrong_codes_then_the_right_one(ctx, clock):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")

    for attempt in range(1, 5):
        result = signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))
        assert result.status == Status.REJECTED, attempt
        assert result.failures == attempt
    fifth = signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))
    assert fifth.status == Status.LOCKED
    assert fifth.locked_until == ctx.now() + 30

    clock.advance(10)
    right = signin.submit_code(ctx, challenge, code_at(secret, ctx.now()))
    assert right.status == Status.LOCKED
    assert right.reason == Reason.LOCKED
    assert right.locked_until == fifth.locked_until
    assert "20 s" in right.message, right.message

    # Entering the password again does not clear the lock.
    again = signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
    )
    assert again.status == Status.LOCKED
    assert again.locked_until == fifth.locked_until
    assert again.challenge is None
    assert throttle_of(ctx, "sam@acme.test").failures == 5

    clock.set(fifth.locked_until)
    challenge = code_challenge(ctx, "sam@acme.test")
    result = signin.submit_code(ctx, challenge, code_at(secret, ctx.now()))
    assert result.status == Status.SIGNED_IN, result.message
    throttle = throttle_of(ctx, "sam@acme.test")
    assert throttle.failures == 0
    assert throttle.locked_until == 0


def test_each_further_wrong_code_doubles_the_lock(ctx, clock):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    for _ in range(5):
        result = signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))

    waits = []
    for _ in range(6):
        clock.set(result.locked_until)
        challenge = code_challenge(ctx, "sam@acme.test")
        result = signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))
        assert result.status == Status.LOCKED
        waits.append(result.locked_until - ctx.now())
    assert waits == [60, 120, 240, 480, 900, 900]


def test_locked_attempts_are_not_counted_but_audited(ctx, clock):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    for _ in range(5):
        signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))
    for _ in range(3):
        signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))

    assert throttle_of(ctx, "sam@acme.test").failures == 5
    with Session(ctx.engine) as session:
        events = session.exec(select(AuditEvent.event, AuditEvent.reason)).all()
    assert (Event.CODE_LOCKED, "5 consecutive failures") in events
    assert sum(1 for event in events if event == (Event.CODE_REJECTED, "locked")) == 3


def test_reset_clears_the_lock(ctx, clock):
    boss = add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    for _ in range(5):
        signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))

    admin.reset_enrollment(ctx, boss, "acme", "sam@acme.test", "lost phone")

    throttle = throttle_of(ctx, "sam@acme.test")
    assert throttle.failures == 0
    assert throttle.locked_until == 0
    result = signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
    )
    assert result.status == Status.ENROLLMENT_REQUIRED


def test_wrong_codes_during_enrollment_count_too(ctx):
    add_acme(ctx)
    from tests.helpers import start_enrollment

    challenge, secret = start_enrollment(ctx, "sam@acme.test")
    for _ in range(5):
        result = signin.submit_code(ctx, challenge, wrong_code(secret, ctx.now()))
    assert result.status == Status.LOCKED
