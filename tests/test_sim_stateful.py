"""Random sequences of sign-ins, codes, clock moves, switches and resets against a sandbox.

The rules drive the core through the simulator's PortalDriver, which checks
the invariants on every outcome. The @invariant below checks the database
after every step as well.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlmodel import Session, func, select

from core import admin
from core.models import (
    AuthSession,
    Enrollment,
    SignInChallenge,
    User,
    UserKind,
)
from core.sandbox import SANDBOX_PORTAL, Sandbox
from core.signin import Reason, Status
from simulations.invariants import InvariantChecker
from simulations.world import OWNER, PERIOD, PortalDriver, code_matches_any
from tests.helpers import SEEN

INTERNAL = ("alex", "blair")
CUSTOMERS = ("casey",)
BLAIR_PASSWORD = "blair-sandbox-pass"
# Mostly moves within a sign-in; the long ones expire challenges, locks and sessions.
CLOCK_MOVES = (1, 5, 15, 29, 30, 31, 61, 1, 5, 30, 90, 301, 601, 3_600, 9 * 3_600)
# Kinds of code a user types, the likelier ones listed more than once.
CODE_KINDS = (
    ("right",) * 3 + ("replayed",) * 3 + ("offset",) * 2 + ("wrong", "older entry")
)
PHONE_OFFSETS = (-95, -61, -31, -30, -1, 1, 29, 31, 60, 91)
# Challenges end with these reasons, so the user must pass the password step again.
ENDED = {Reason.SIGN_IN_EXPIRED, Reason.ENROLLMENT_CHANGED, Reason.ENROLLMENT_EXPIRED}
WRONG_CODE_REACH_STEPS = 12


class SignInMachine(RuleBasedStateMachine):
    """The owner, two internal users and a customer, with phones and a manual clock."""

    @initialize(switch_on=st.booleans())
    def create_sandbox(self, switch_on: bool) -> None:
        self.sandbox = Sandbox.create()
        self.steps = 0
        self.checker = InvariantChecker(self.sandbox.clock, lambda: self.steps)
        self.driver = PortalDriver(self.sandbox.ctx, SANDBOX_PORTAL, self.checker)
        for username in (OWNER, "alex", "casey"):
            kind = UserKind.CUSTOMER if username in CUSTOMERS else UserKind.INTERNAL
            self.driver.know_user(username, self.sandbox.passwords[username], kind)
        self.driver.add_users([("blair", BLAIR_PASSWORD, "admin")])
        SEEN.passwords.update(self.driver.passwords.values())
        self.challenges: dict[str, str] = {}
        self.accepted_codes: dict[str, list[str]] = {name: [] for name in INTERNAL}
        self.switched_on_at: int | None = None
        if switch_on:
            self.switch(True)

    def teardown(self) -> None:
        if hasattr(self, "sandbox"):
            self.sandbox.close()

    @rule(seconds=st.sampled_from(CLOCK_MOVES))
    def move_clock(self, seconds: int) -> None:
        self.steps += 1
        self.sandbox.clock.advance(seconds)

    @rule(user=st.sampled_from(INTERNAL + CUSTOMERS))
    def password_step(self, user: str) -> None:
        self.steps += 1
        result = self.driver.submit_password(user)
        if result.status == Status.ENROLLMENT_REQUIRED:
            self.record_secret(self.driver.scan_offer(user, result.challenge))
        if result.status in (Status.ENROLLMENT_REQUIRED, Status.CODE_REQUIRED):
            self.challenges[user] = result.challenge

    @precondition(lambda self: self.challenges)
    @rule(
        data=st.data(),
        kind=st.sampled_from(CODE_KINDS),
        offset=st.sampled_from(PHONE_OFFSETS),
        guess=st.integers(0, 999_999),
    )
    def submit_code(self, data, kind: str, offset: int, guess: int) -> None:
        self.steps += 1
        user = data.draw(st.sampled_from(sorted(self.challenges)))
        phone = self.driver.phones[user]
        now = self.sandbox.clock.now()
        if kind == "right":
            code, _ = phone.code(now)
        elif kind == "offset":
            code, _ = phone.code(now, offset)
        elif kind == "replayed" and self.accepted_codes[user]:
            code = self.accepted_codes[user][-1]
        elif kind == "older entry" and phone.older:
            code = phone.older[-1].generate_otp(now // PERIOD)
            if self.near_current_code(user, code):
                return
        else:
            kind = "wrong"
            code = self.wrong_code(user, guess)
        SEEN.codes.add(code)

        result = self.driver.submit_code(user, self.challenges[user], code)
        if kind in ("wrong", "older entry"):
            self.checker.old_secret_result(user, result)
        if result.status == Status.SIGNED_IN:
            self.accepted_codes[user].append(code)
            del self.challenges[user]
        elif result.reason in ENDED:
            del self.challenges[user]

    @rule(enabled=st.booleans())
    def switch(self, enabled: bool) -> None:
        self.steps += 1
        outcome = self.driver.set_switch(enabled)
        if enabled and outcome.changed:
            self.switched_on_at = self.sandbox.clock.now()

    @rule(user=st.sampled_from(INTERNAL))
    def reset(self, user: str) -> None:
        self.steps += 1
        self.driver.reset(user, "property test")

    @invariant()
    def database_agrees(self) -> None:
        if not hasattr(self, "sandbox"):
            return
        ctx = self.sandbox.ctx
        settings_row = admin.portal_settings(ctx, SANDBOX_PORTAL)
        assert settings_row.two_factor_enabled == self.driver.switch_on

        with Session(ctx.reader) as session:
            customer_rows = session.exec(
                select(func.count())
                .select_from(Enrollment)
                .join(User, User.id == Enrollment.user_id)
                .where(User.kind == UserKind.CUSTOMER)
            ).one()
            customer_challenges = session.exec(
                select(func.count())
                .select_from(SignInChallenge)
                .join(User, User.id == SignInChallenge.user_id)
                .where(User.kind == UserKind.CUSTOMER)
            ).one()
            password_only = 0
            if self.driver.switch_on and self.switched_on_at is not None:
                password_only = session.exec(
                    select(func.count())
                    .select_from(AuthSession)
                    .join(User, User.id == AuthSession.user_id)
                    .where(
                        User.kind == UserKind.INTERNAL,
                        AuthSession.with_code.is_(False),
                        AuthSession.created_at > self.switched_on_at,
                    )
                ).one()
        assert customer_rows == 0, "a customer has an enrollment"
        assert customer_challenges == 0, "a customer was asked for a code"
        assert password_only == 0, "an internal user signed in without a code"

    def record_secret(self, secret: str) -> None:
        SEEN.add_secret(secret)

    def wrong_code(self, user: str, guess: int) -> str:
        """Return a code near ``guess`` that equals no code of the user's entries nearby."""
        entries = [self.driver.phones[user].current, *self.driver.phones[user].older]
        step = self.sandbox.clock.now() // PERIOD
        steps = range(step - WRONG_CODE_REACH_STEPS, step + WRONG_CODE_REACH_STEPS + 1)
        while True:
            code = f"{guess:06d}"
            if not any(
                entry is not None and code_matches_any(entry, code, steps)
                for entry in entries
            ):
                return code
            guess = (guess + 1) % 1_000_000

    def near_current_code(self, user: str, code: str) -> bool:
        current = self.driver.phones[user].current
        step = self.sandbox.clock.now() // PERIOD
        steps = range(step - WRONG_CODE_REACH_STEPS, step + WRONG_CODE_REACH_STEPS + 1)
        return current is not None and code_matches_any(current, code, steps)


SignInMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSignInInvariants = SignInMachine.TestCase
