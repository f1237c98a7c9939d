"""Window edges and drift tracking, with a frozen clock stepped across step boundaries."""

import pytest
from sqlmodel import Session, select

from core import admin, signin
from core.models import Enrollment
from core.signin import Status
from tests.helpers import (
    PERIOD,
    START,
    add_acme,
    code_at,
    code_challenge,
    enroll,
    start_enrollment,
)

LATER_STEP = START // PERIOD + 100  # a step well after enrollment


def enrolled_sam(ctx, window):
    """Enroll sam at START with a portal window; return the secret."""
    boss = add_acme(ctx)
    admin.set_window(ctx, boss, "acme", window)
    return enroll(ctx, "sam@acme.test")


@pytest.mark.parametrize(
    ("step_offset", "accepted"),
    [(-2, False), (-1, True), (0, True), (1, True), (2, False)],
)
def test_window_one_edges(ctx, clock, step_offset, accepted):
    secret = enrolled_sam(ctx, window=1)
    clock.set(LATER_STEP * PERIOD + 15)
    challenge = code_challenge(ctx, "sam@acme.test")

    code = code_at(secret, (LATER_STEP + step_offset) * PERIOD)
    result = signin.submit_code(ctx, challenge, code)

    expected = Status.SIGNED_IN if accepted else Status.REJECTED
    assert result.status == expected, f"offset {step_offset}: {result.message}"


@pytest.mark.parametrize(
    ("second", "accepted"),
    [
        (0, True),  # first second of the step
        (PERIOD - 1, True),  # last second of the step
        (-1, False),  # last second of the step before
        (PERIOD, False),  # first second of the step after
    ],
)
def test_window_zero_edges(ctx, clock, second, accepted):
    secret = enrolled_sam(ctx, window=0)
    clock.set(LATER_STEP * PERIOD + second)
    challenge = code_challenge(ctx, "sam@acme.test")

    code = code_at(secret, LATER_STEP * PERIOD)
    result = signin.submit_code(ctx, challenge, code)

    expected = Status.SIGNED_IN if accepted else Status.REJECTED
    assert result.status == expected, f"second {second}: {result.message}"


def stored_drift(ctx) -> int:
    with Session(ctx.engine) as session:
        return session.exec(
            select(Enrollment.drift).where(Enrollment.status == "active")
        ).one()


def test_phone_fifty_seconds_fast_keeps_working(ctx, clock):
    """A phone 50 s fast shows codes 1 or 2 steps ahead; after its first success
    the remembered drift keeps every later sign-in working."""
    add_acme(ctx)
    phone_offset = 50
    challenge, secret = start_enrollment(ctx, "sam@acme.test")
    # Try to confirm until the first success, as a person would.
    for _ in range(10):
        result = signin.submit_code(
            ctx, challenge, code_at(secret, ctx.now() + phone_offset)
        )
        if result.status == Status.SIGNED_IN:
            break
        clock.advance(PERIOD)
    assert result.status == Status.SIGNED_IN, result.message

    for attempt in range(20):
        # Sign-ins at varied phases within the step, at least two steps apart.
        clock.advance(2 * PERIOD + 7 * attempt % PERIOD)
        challenge = code_challenge(ctx, "sam@acme.test")
        result = signin.submit_code(
            ctx, challenge, code_at(secret, ctx.now() + phone_offset)
        )
        assert result.status == Status.SIGNED_IN, f"sign-in {attempt}: {result.message}"
        drift = stored_drift(ctx)
        assert drift in (1, 2), f"sign-in {attempt}: drift {drift}"


def test_drift_never_exceeds_the_limit(ctx, clock):
    """A phone that runs further and further ahead drags the drift up to the limit, never past."""
    add_acme(ctx)
    limit = admin.portal_settings(ctx, "acme").drift_limit
    secret = enroll(ctx, "sam@acme.test")

    phone_offset = 0
    for attempt in range(12):
        clock.advance(5 * PERIOD)
        phone_offset += PERIOD  # the phone gains one step per sign-in
        challenge = code_challenge(ctx, "sam@acme.test")
        signin.submit_code(ctx, challenge, code_at(secret, ctx.now() + phone_offset))
        assert abs(stored_drift(ctx)) <= limit, f"sign-in {attempt}"
    assert stored_drift(ctx) == limit


def test_drift_limit_zero_turns_tracking_off(ctx, clock):
    add_acme(ctx)
    admin.set_drift_limit(ctx, "acme", 0)
    secret = enroll(ctx, "sam@acme.test")

    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    result = signin.submit_code(ctx, challenge, code_at(secret, ctx.now() + PERIOD))

    assert result.status == Status.SIGNED_IN
    assert stored_drift(ctx) == 0
