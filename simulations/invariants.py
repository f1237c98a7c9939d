"""Policy invariants that every scenario checks after each step.

- No time step is accepted twice for one enrollment of a user. The core keeps
  the last accepted step per enrollment, so a new enrollment after a reset or
  a switch starts a fresh history with a new secret.
- No internal user is signed in without a code while the switch is on.
- Customers are never asked for a code.
- A reset changes one user only.
- A code from a revoked secret (an old authenticator entry) is never accepted.

A broken invariant raises InvariantViolation, which stops the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from core import signin
from core.clock import Clock
from core.context import Context
from core.models import (
    ChallengeState,
    CodeThrottle,
    Enrollment,
    Portal,
    SignInChallenge,
    User,
    UserKind,
)
from core.signin import SignInResult, Status
from simulations.errors import InvariantViolation

STEP_ONCE = "time step accepted once"
CODE_WHILE_ON = "code required while the switch is on"
CUSTOMERS_NO_CODE = "customers never asked for a code"
RESET_ONE_USER = "reset changes one user only"
OLD_SECRET_REJECTED = "revoked secrets never work again"
ACCEPTED_IS_ACTIVE = "an accepted code leaves an active enrollment"


class InvariantChecker:
    """Check the invariants on the outcomes a scenario receives, and raise on a breach.

    ``step_counter`` returns the number of the scenario's current step, for
    the report; the clock gives the simulated time.
    """

    def __init__(self, clock: Clock, step_counter: Callable[[], int]) -> None:
        self.clock = clock
        self.step_counter = step_counter
        self.checks = 0
        # Last accepted time step per (username, enrollment id).
        self._last_accepted: dict[tuple[str, int], int] = {}

    def fail(self, invariant: str, user: str | None, **values: Any) -> None:
        raise InvariantViolation(
            invariant, self.step_counter(), self.clock.now(), user, values
        )

    def password_step(
        self, user: str, kind: str, switch_on: bool, result: SignInResult
    ) -> None:
        """Check the status of a password step with the right password."""
        self.checks += 1
        # A customer with the right password signs in with it alone, whatever the setting.
        if kind == UserKind.CUSTOMER and result.status != Status.SIGNED_IN:
            self.fail(CUSTOMERS_NO_CODE, user, status=str(result.status))
        if (
            kind == UserKind.INTERNAL
            and switch_on
            and result.status == Status.SIGNED_IN
        ):
            self.fail(CODE_WHILE_ON, user, status=str(result.status), path="password")

    def session_opened(
        self, ctx: Context, user: str, kind: str, switch_on: bool, token: str
    ) -> None:
        """Check how a new session of ``user`` was opened, as the core recorded it."""
        self.checks += 1
        opened = signin.current_user(ctx, token)
        if opened.username != user:
            self.fail(CODE_WHILE_ON, user, session_user=opened.username)
        if kind == UserKind.INTERNAL and switch_on and not opened.with_code:
            self.fail(CODE_WHILE_ON, user, with_code=opened.with_code)
        if kind == UserKind.CUSTOMER and opened.with_code:
            self.fail(CUSTOMERS_NO_CODE, user, with_code=opened.with_code)

    def step_accepted(self, user: str, enrollment_id: int, step: int) -> None:
        """Record an accepted time step; it must be later than every earlier one."""
        self.checks += 1
        key = (user, enrollment_id)
        last = self._last_accepted.get(key)
        if last is not None and step <= last:
            self.fail(
                STEP_ONCE,
                user,
                enrollment_id=enrollment_id,
                accepted_step=step,
                last_accepted_step=last,
            )
        self._last_accepted[key] = step

    def old_secret_result(self, user: str, result: SignInResult) -> None:
        """Check the outcome of a code from a revoked secret: it must not sign in."""
        self.checks += 1
        if result.status == Status.SIGNED_IN:
            self.fail(OLD_SECRET_REJECTED, user, status=str(result.status))

    def reset_done(
        self,
        target: str,
        before: dict[str, tuple[Any, ...]],
        after: dict[str, tuple[Any, ...]],
    ) -> None:
        """Compare user states around a reset: only the target may differ."""
        self.checks += 1
        changed = sorted(
            username
            for username in before.keys() | after.keys()
            if before.get(username) != after.get(username) and username != target
        )
        if changed:
            self.fail(RESET_ONE_USER, target, other_users_changed=changed)


def user_snapshot(ctx: Context, portal_slug: str) -> dict[str, tuple[Any, ...]]:
    """Return, per user of a portal, every enrollment row, the throttle and open challenges."""
    with Session(ctx.reader) as session:
        users = session.exec(
            select(
                User.id, User.username, CodeThrottle.failures, CodeThrottle.locked_until
            )
            .join(Portal, Portal.id == User.portal_id)
            .join(CodeThrottle, CodeThrottle.user_id == User.id)
            .where(Portal.slug == portal_slug)
        ).all()
        ids = [user_id for user_id, *_ in users]
        enrollments = session.exec(
            select(
                Enrollment.user_id,
                Enrollment.id,
                Enrollment.status,
                Enrollment.generation,
                Enrollment.last_step,
                Enrollment.drift,
                Enrollment.ended_at,
            )
            .where(Enrollment.user_id.in_(ids))
            .order_by(Enrollment.id)
        ).all()
        challenges = session.exec(
            select(SignInChallenge.user_id, SignInChallenge.id).where(
                SignInChallenge.user_id.in_(ids),
                SignInChallenge.state == ChallengeState.OPEN,
            )
        ).all()

    rows_by_user: dict[int, list[tuple]] = {user_id: [] for user_id in ids}
    for row in enrollments:
        rows_by_user[row[0]].append(tuple(row[1:]))
    challenges_by_user: dict[int, list[int]] = {user_id: [] for user_id in ids}
    for user_id, challenge_id in challenges:
        challenges_by_user[user_id].append(challenge_id)

    return {
        username: (
            tuple(rows_by_user[user_id]),
            failures,
            locked_until,
            tuple(sorted(challenges_by_user[user_id])),
        )
        for user_id, username, failures, locked_until in users
    }
