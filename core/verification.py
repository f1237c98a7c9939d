"""Checking a code against an enrollment: throttle, window, drift, replay and audit.

Every function here works on a connection inside the caller's transaction,
so the code check, the throttle change and the audit row commit together.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Update, bindparam, select, update

from core import audit, totp
from core.codes import FormatProblem, normalise_code
from core.models import (
    CodeThrottle,
    Enrollment,
    EnrollmentStatus,
    Portal,
    SecuritySettings,
    User,
)
from core.prepared import Prepared, Raw

if TYPE_CHECKING:
    from core.context import Context

# Consecutive wrong codes before code entry locks, and the lock that follows:
# 30 s, doubling with every further wrong code, at most 15 minutes.
LOCK_AFTER_FAILURES = 5
FIRST_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 15 * 60


class Rejection(enum.StrEnum):
    """The reason a code was not accepted."""

    LOCKED = "locked"
    BAD_FORMAT = "bad_format"
    WRONG_CODE = "wrong_code"
    REPLAY = "replay"
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True)
class CodeCheck:
    """The TOTP parameters and replay state of one enrollment at the time of a check."""

    enrollment_id: int
    user_id: int
    expected_status: str  # the status the enrollment must still have when it is updated
    secret: bytes
    last_step: int
    drift: int
    window: int
    drift_limit: int
    failures: int
    locked_until: int
    digits: int = totp.DEFAULT_DIGITS
    period: int = totp.DEFAULT_PERIOD


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    rejection: Rejection | None = None
    format_problem: FormatProblem | None = None
    step: int | None = None
    drift: int | None = None
    failures: int = 0
    locked_until: int = 0


# The statements of a code check are built once and run through core.prepared,
# because executing them through SQLAlchemy cost more than the SQLite work.
# Bind names never equal a column name, because SQLAlchemy reserves column
# names for the values of an UPDATE.
_enrollment = Enrollment.__table__
_throttle = CodeThrottle.__table__


def _claim_step_statement(activate: bool) -> Update:
    """Build the replay guard, which moves ``last_step`` forward only while it is below ``new_step``."""
    values = {"last_step": bindparam("new_step"), "drift": bindparam("new_drift")}
    if activate:
        values.update(
            status=EnrollmentStatus.ACTIVE.value, confirmed_at=bindparam("now")
        )
    return (
        update(_enrollment)
        .where(
            _enrollment.c.id == bindparam("enrollment_id"),
            _enrollment.c.status == bindparam("expected_status"),
            _enrollment.c.last_step < bindparam("new_step"),
        )
        .values(**values)
    )


_CLAIM_STEP = Prepared(_claim_step_statement(activate=False))
_CLAIM_STEP_AND_ACTIVATE = Prepared(_claim_step_statement(activate=True))
_COUNT_FAILURE = Prepared(
    update(_throttle)
    .where(_throttle.c.user_id == bindparam("throttled_user_id"))
    .values(failures=_throttle.c.failures + 1, last_failure_at=bindparam("now"))
    .returning(_throttle.c.failures)
)
_LOCK = Prepared(
    update(_throttle)
    .where(_throttle.c.user_id == bindparam("throttled_user_id"))
    .values(locked_until=bindparam("lock_end"))
)
_CLEAR_FAILURES = Prepared(
    update(_throttle)
    .where(_throttle.c.user_id == bindparam("throttled_user_id"))
    .values(failures=0, locked_until=0)
)
# Everything a check of an active enrollment needs, in one read.
_LOAD_ACTIVE = Prepared(
    select(
        _enrollment.c.id,
        _enrollment.c.secret_encrypted,
        _enrollment.c.last_step,
        _enrollment.c.drift,
        SecuritySettings.window,
        SecuritySettings.drift_limit,
        _throttle.c.failures,
        _throttle.c.locked_until,
        User.username,
        Portal.id,
        Portal.slug,
    )
    .join(User, User.id == _enrollment.c.user_id)
    .join(Portal, Portal.id == User.portal_id)
    .join(SecuritySettings, SecuritySettings.portal_id == Portal.id)
    .join(_throttle, _throttle.c.user_id == User.id)
    .where(
        _enrollment.c.user_id == bindparam("enrolled_user_id"),
        _enrollment.c.status == EnrollmentStatus.ACTIVE.value,
        _enrollment.c.generation == SecuritySettings.generation,
        SecuritySettings.two_factor_enabled == bindparam("enabled"),
    )
    # Checks of one user's codes queue on the throttle row (see signin.submit_code).
    .with_for_update(of=_throttle)
)


def lock_seconds(failures: int) -> int:
    """Return how long code entry locks after ``failures`` consecutive wrong codes (0: no lock)."""
    if failures < LOCK_AFTER_FAILURES:
        return 0
    doublings = min(
        failures - LOCK_AFTER_FAILURES, 16
    )  # 2**16 * 30 s is far past the cap
    return min(FIRST_LOCK_SECONDS * 2**doublings, MAX_LOCK_SECONDS)


@functools.lru_cache(maxsize=256)
def candidate_offsets(window: int, drift: int) -> tuple[int, ...]:
    """Offsets in time steps to try: the window around our clock and the window around the drift.

    The window around our clock is always kept, so one slow entry that moved
    the drift cannot shut out a phone whose clock is right.
    """
    offsets = set(range(-window, window + 1)) | set(
        range(drift - window, drift + window + 1)
    )
    return tuple(sorted(offsets, key=lambda offset: (abs(offset - drift), abs(offset))))


def match_step(check: CodeCheck, code: str, now: int) -> tuple[int, int] | None:
    """Return (time step, offset) of the first candidate whose code equals ``code``."""
    current = totp.time_step(now, check.period)
    for offset in candidate_offsets(check.window, check.drift):
        step = current + offset
        if step < 0:
            continue
        expected = totp.hotp(check.secret, step, check.digits)
        if totp.codes_match(expected, code):
            return step, offset
    return None


def record_failure(
    connection: Connection | Raw, user_id: int, now: int
) -> tuple[int, int]:
    """Count one wrong code atomically and lock when due; return (failures, locked_until)."""
    raw = Raw.of(connection)
    (failures,) = _COUNT_FAILURE.execute(
        raw, {"throttled_user_id": user_id, "now": now}
    ).fetchone()

    seconds = lock_seconds(failures)
    if not seconds:
        return failures, 0
    locked_until = now + seconds
    _LOCK.execute(raw, {"throttled_user_id": user_id, "lock_end": locked_until})
    return failures, locked_until


def clear_failures(connection: Connection | Raw, user_id: int) -> None:
    _CLEAR_FAILURES.execute(Raw.of(connection), {"throttled_user_id": user_id})


def verify_code(
    connection: Connection | Raw,
    check: CodeCheck,
    raw_code: object,
    now: int,
    audit_fields: dict[str, object],
    activate: bool = False,
) -> Verdict:
    """Check ``raw_code`` and record the outcome, all in the caller's transaction.

    ``activate`` also turns a pending enrollment active on success. The replay
    guard is the conditional UPDATE (``last_step < step``), so two servers
    checking the same code at once cannot both accept it.
    ``audit_fields`` carries the actor, portal and target for the audit row.
    """
    connection = Raw.of(connection)
    if check.locked_until > now:
        audit.record(
            connection,
            now,
            audit.Event.CODE_REJECTED,
            audit.Outcome.REJECTED,
            reason=Rejection.LOCKED,
            detail={"locked_until": check.locked_until},
            **audit_fields,
        )
        return Verdict(
            False,
            Rejection.LOCKED,
            failures=check.failures,
            locked_until=check.locked_until,
        )

    normalised = normalise_code(raw_code, check.digits)
    if normalised.code is None:
        return _reject(
            connection,
            check,
            now,
            Rejection.BAD_FORMAT,
            audit_fields,
            normalised.problem,
        )

    matched = match_step(check, normalised.code, now)
    if matched is None:
        return _reject(connection, check, now, Rejection.WRONG_CODE, audit_fields)
    step, offset = matched
    if step <= check.last_step:
        return _reject(connection, check, now, Rejection.REPLAY, audit_fields)

    drift = max(-check.drift_limit, min(check.drift_limit, offset))
    claim = _CLAIM_STEP_AND_ACTIVATE if activate else _CLAIM_STEP
    claimed = claim.execute(
        connection,
        {
            "enrollment_id": check.enrollment_id,
            "expected_status": check.expected_status,
            "new_step": step,
            "new_drift": drift,
            "now": now,
        },
    ).rowcount
    if claimed != 1:
        # Another server accepted this step or a later one first.
        return _reject(connection, check, now, Rejection.REPLAY, audit_fields)

    if check.failures or check.locked_until:
        clear_failures(connection, check.user_id)
    audit.record(
        connection,
        now,
        audit.Event.ENROLLMENT_CONFIRMED if activate else audit.Event.CODE_ACCEPTED,
        audit.Outcome.SUCCESS,
        detail={"offset": offset},
        **audit_fields,
    )
    return Verdict(True, step=step, drift=drift)


def _reject(
    connection: Raw,
    check: CodeCheck,
    now: int,
    rejection: Rejection,
    audit_fields: dict[str, object],
    problem: FormatProblem | None = None,
) -> Verdict:
    failures, locked_until = record_failure(connection, check.user_id, now)
    event = (
        audit.Event.REPLAY_REJECTED
        if rejection is Rejection.REPLAY
        else audit.Event.CODE_REJECTED
    )
    reason = f"{rejection}:{problem}" if problem else str(rejection)
    audit.record(
        connection,
        now,
        event,
        audit.Outcome.REJECTED,
        reason=reason,
        detail={"failures": failures},
        **audit_fields,
    )
    if locked_until:
        audit.record(
            connection,
            now,
            audit.Event.CODE_LOCKED,
            audit.Outcome.REJECTED,
            reason=f"{failures} consecutive failures",
            detail={"failures": failures, "locked_until": locked_until},
            **audit_fields,
        )
    return Verdict(
        False,
        rejection,
        format_problem=problem,
        failures=failures,
        locked_until=locked_until,
    )


def verify_for_user(ctx: Context, user_id: int, raw_code: object) -> Verdict:
    """Check a code of a user with an active enrollment, in one committed transaction.

    This is the whole check (read, throttle, replay guard, audit row) without
    the sign-in around it, for callers that already know the user, such as
    simulations and benchmarks. It runs on the driver's connection because
    the SQLAlchemy layer around each statement costs as much as SQLite does.
    """
    now = ctx.now()
    with ctx.pinned.write() as raw:
        row = _LOAD_ACTIVE.execute(
            raw, {"enrolled_user_id": user_id, "enabled": True}
        ).fetchone()
        if row is None:
            return Verdict(False, Rejection.NOT_ENROLLED)
        (
            enrollment_id,
            token,
            last_step,
            drift,
            window,
            drift_limit,
            failures,
            locked_until,
            username,
            portal_id,
            portal_slug,
        ) = row
        check = CodeCheck(
            enrollment_id=enrollment_id,
            user_id=user_id,
            expected_status=EnrollmentStatus.ACTIVE.value,
            secret=ctx.box.decrypt(token),
            last_step=last_step,
            drift=drift,
            window=window,
            drift_limit=drift_limit,
            failures=failures,
            locked_until=locked_until,
        )
        fields = {
            "actor": audit.Actor.user(username),
            "portal_id": portal_id,
            "portal_slug": portal_slug,
            "target": username,
        }
        return verify_code(raw, check, raw_code, now, fields)
