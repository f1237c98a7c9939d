"""Switch: the two-factor switch goes on, off and on again while people keep signing in.

A portal has an owner (Master Admin), ``users`` internal users and
``customers`` customer users. The owner turns two-factor authentication on
half an hour into day 0, off at noon of ``switch_off_day`` and on again at
noon of ``switch_on_again_day``, and resets random internal users
(``resets_per_day`` on average, Poisson). Everyone signs in
``sign_ins_per_day`` times a day at random moments.

An internal user who is asked to enroll scans the QR code and finishes with
probability ``enrollment_completion``; otherwise the pending enrollment is
left to expire. Phones keep the entries of earlier secrets, and with
probability ``old_entry_probability`` a user first types a code from such an
older entry, which must be rejected.

The summary, one row every ``snapshot_hours``, shows how many internal users
need to enroll, how many old-entry codes were tried and rejected, and the
customers' sign-ins. A second portal in the same database is checked at the
end to be unchanged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
from sqlmodel import Session

from core import admin
from core.models import UserKind
from core.sandbox import SANDBOX_PORTAL, Sandbox
from core.signin import Status
from simulations.errors import InvalidParameter, SimulationError
from simulations.invariants import InvariantChecker, user_snapshot
from simulations.params import as_dict, parameter
from simulations.result import Progress, ProgressCallback, Result
from simulations.scheduler import Scheduler
from simulations.world import OWNER, PERIOD, Phone, PortalDriver, code_matches_any

PORTAL = "switch"
PORTAL_NAME = "Switch Billing"
OWNER_PASSWORD = "switch-owner-password"
USER_PASSWORD = "switch-user-password"
SECONDS_PER_DAY = 86_400
SWITCH_ON_AFTER_SECONDS = 1_800
NOON_SECONDS = 43_200
SLOT_MARGIN_SECONDS = 1_200
SCAN_DELAY_SECONDS = (15, 60)  # from the QR code appearing to the first code read
TYPING_DELAY_SECONDS = (3, 15)  # from reading a code to submitting it
# An older entry's code is not typed when it equals a code the core would
# accept now (a chance collision), so that no false breach is reported.
COLLISION_REACH_STEPS = admin.MAX_WINDOW + admin.MAX_DRIFT_LIMIT + 1


@dataclass(frozen=True)
class Parameters:
    users: int = parameter(20, "internal users besides the owner", 1, 2_000)
    customers: int = parameter(5, "customer users", 0, 2_000)
    days: int = parameter(10, "simulated days", 1, 365)
    sign_ins_per_day: int = parameter(2, "sign-ins per user per day", 1, 24)
    switch_off_day: int = parameter(
        4, "day at whose noon the owner turns two-factor authentication off", 0, 365
    )
    switch_on_again_day: int = parameter(
        6, "day at whose noon the owner turns it on again", 0, 365
    )
    resets_per_day: float = parameter(
        1.0, "mean number of resets of random internal users per day", 0, 100
    )
    enrollment_completion: float = parameter(
        0.8, "probability that a user asked to enroll finishes in that sign-in", 0, 1
    )
    old_entry_probability: float = parameter(
        0.3,
        "probability that a user with an older authenticator entry first types its code",
        0,
        1,
    )
    snapshot_hours: int = parameter(3, "hours between two summary rows", 1, 24)


def check_parameters(parameters: Parameters) -> None:
    if not parameters.switch_off_day < parameters.switch_on_again_day:
        raise InvalidParameter(
            f"switch_on_again_day ({parameters.switch_on_again_day}) must be after "
            f"switch_off_day ({parameters.switch_off_day})"
        )


class SwitchRun:
    """The database, the driver, the counters and the event rows of one run."""

    def __init__(self, parameters: Parameters, seed: int) -> None:
        self.parameters = parameters
        self.sandbox = Sandbox.create()
        self.ctx = self.sandbox.ctx
        self.clock = self.sandbox.clock
        self.start = self.clock.now()
        self.scheduler = Scheduler(self.clock)
        self.checker = InvariantChecker(self.clock, lambda: self.scheduler.actions)
        self.seeds = np.random.SeedSequence(seed)
        self.counts: Counter[str] = Counter()  # by "action: outcome"
        self.actions: Counter[str] = Counter()  # by action
        self.rows: list[dict] = []
        self.snapshots: list[dict] = []

        admin.create_portal(self.ctx, PORTAL, PORTAL_NAME)
        admin.add_user(self.ctx, PORTAL, OWNER, OWNER_PASSWORD, "master-admin")
        self.driver = PortalDriver(self.ctx, PORTAL, self.checker)
        self.driver.know_user(OWNER, OWNER_PASSWORD, UserKind.INTERNAL)
        self.internal = [f"u{index:04d}" for index in range(parameters.users)]
        self.customers = [f"c{index:04d}" for index in range(parameters.customers)]
        self.driver.add_users(
            [(name, USER_PASSWORD, "standard") for name in self.internal]
            + [(name, USER_PASSWORD, "customer") for name in self.customers]
        )

    def rng(self) -> np.random.Generator:
        """Return a new generator for one actor, so that its draws do not depend on others."""
        (child,) = self.seeds.spawn(1)
        return np.random.default_rng(child)

    def record(self, actor: str, action: str, outcome: str) -> None:
        now = self.clock.now()
        self.rows.append(
            {
                "time_seconds": now - self.start,
                "day": (now - self.start) // SECONDS_PER_DAY,
                "actor": actor,
                "kind": OWNER if actor == OWNER else self.driver.kinds[actor],
                "action": action,
                "outcome": outcome,
                "switch_on": self.driver.switch_on,
            }
        )
        self.counts[f"{action}: {outcome}"] += 1
        self.actions[action] += 1


def simulate(
    parameters: Parameters, seed: int, on_progress: ProgressCallback | None = None
) -> Result:
    check_parameters(parameters)
    run = SwitchRun(parameters, seed)
    try:
        other_portal_before = user_snapshot(run.ctx, SANDBOX_PORTAL)
        end = run.start + parameters.days * SECONDS_PER_DAY
        progress = Progress(on_progress, parameters.days * 24)

        run.scheduler.start(owner_actor(run, run.rng()))
        for name in run.internal:
            run.scheduler.start(internal_actor(run, name, run.rng()))
        for name in run.customers:
            run.scheduler.start(customer_actor(run, name, run.rng()))
        run.scheduler.start(snapshot_actor(run, progress))
        run.scheduler.run(until=end)
        progress.finish()

        other_portal_unchanged = user_snapshot(run.ctx, SANDBOX_PORTAL) == (
            other_portal_before
        )
    finally:
        run.sandbox.close()

    events = pd.DataFrame(run.rows)
    summary = pd.DataFrame(run.snapshots)
    report = build_report(run, parameters, seed, other_portal_unchanged)
    return Result(events, summary, report)


def sign_in_moments(run: SwitchRun, rng: np.random.Generator):
    """Yield the waits up to each sign-in moment of one actor, slot by slot."""
    per_day = run.parameters.sign_ins_per_day
    slot = SECONDS_PER_DAY // per_day
    for day in range(run.parameters.days):
        for index in range(per_day):
            moment = run.start + day * SECONDS_PER_DAY + index * slot
            moment += int(rng.integers(0, slot - SLOT_MARGIN_SECONDS))
            yield max(moment - run.clock.now(), 0)


def owner_actor(run: SwitchRun, rng: np.random.Generator):
    """Turn the switch on, off and on again, and reset random internal users."""
    parameters = run.parameters
    actions = [(run.start + SWITCH_ON_AFTER_SECONDS, "switch on")]
    for day, action in (
        (parameters.switch_off_day, "switch off"),
        (parameters.switch_on_again_day, "switch on"),
    ):
        if day < parameters.days:
            actions.append((run.start + day * SECONDS_PER_DAY + NOON_SECONDS, action))
    for day in range(parameters.days):
        for _ in range(int(rng.poisson(parameters.resets_per_day))):
            moment = (
                run.start
                + day * SECONDS_PER_DAY
                + int(rng.integers(0, SECONDS_PER_DAY))
            )
            target = run.internal[int(rng.integers(0, len(run.internal)))]
            actions.append((moment, f"reset {target}"))

    for moment, action in sorted(actions):
        yield max(moment - run.clock.now(), 0)
        if action.startswith("reset "):
            target = action.removeprefix("reset ")
            outcome = run.driver.reset(target, "simulated reset")
            run.record(OWNER, "reset", f"{outcome.revoked} revoked")
            run.record(target, "reset by the owner", f"{outcome.revoked} revoked")
        else:
            enabled = action == "switch on"
            outcome = run.driver.set_switch(enabled)
            run.record(OWNER, action, f"{outcome.revoked} enrollments revoked")


def internal_actor(run: SwitchRun, name: str, rng: np.random.Generator):
    """Sign an internal user in at random moments, enrolling when the core requires it."""
    driver = run.driver
    phone = driver.phones[name]
    for wait in sign_in_moments(run, rng):
        yield wait
        result = driver.submit_password(name)
        if result.status == Status.SIGNED_IN:
            run.record(name, "password", "signed in without a code")
            continue
        if result.status not in (Status.ENROLLMENT_REQUIRED, Status.CODE_REQUIRED):
            run.record(name, "password", str(result.reason or result.status))
            continue

        enrolling = result.status == Status.ENROLLMENT_REQUIRED
        if enrolling:
            driver.scan_offer(name, result.challenge)
        if phone.older and rng.random() < run.parameters.old_entry_probability:
            try_older_entry(run, name, phone, result.challenge, rng)
        if enrolling and rng.random() >= run.parameters.enrollment_completion:
            run.record(name, "enrollment", "abandoned")
            continue

        if enrolling:
            yield int(rng.integers(SCAN_DELAY_SECONDS[0], SCAN_DELAY_SECONDS[1] + 1))
        code, _ = phone.code(run.clock.now())
        yield int(rng.integers(TYPING_DELAY_SECONDS[0], TYPING_DELAY_SECONDS[1] + 1))
        result = driver.submit_code(name, result.challenge, code)
        action = "first code" if enrolling else "code"
        outcome = (
            "signed in" if result.status == Status.SIGNED_IN else str(result.reason)
        )
        run.record(name, action, outcome)


def try_older_entry(
    run: SwitchRun, name: str, phone: Phone, challenge: str, rng: np.random.Generator
) -> None:
    """Type a code from one of the phone's older entries; the core must reject it."""
    entry = phone.older[int(rng.integers(0, len(phone.older)))]
    now = run.clock.now()
    server_step = now // PERIOD
    code = entry.generate_otp(server_step)
    reach = range(
        server_step - COLLISION_REACH_STEPS, server_step + COLLISION_REACH_STEPS + 1
    )
    if code_matches_any(phone.current, code, reach):
        run.record(name, "older entry code", "skipped: equals a current code")
        return
    result = run.driver.submit_code(name, challenge, code)
    run.checker.old_secret_result(name, result)
    run.record(name, "older entry code", str(result.reason or result.status))


def customer_actor(run: SwitchRun, name: str, rng: np.random.Generator):
    """Sign a customer in with the password alone at random moments."""
    for wait in sign_in_moments(run, rng):
        yield wait
        result = run.driver.submit_password(name)
        outcome = (
            "signed in" if result.status == Status.SIGNED_IN else str(result.status)
        )
        run.record(name, "customer sign-in", outcome)


def snapshot_actor(run: SwitchRun, progress: Progress):
    """Record the enrollment states and the counters every ``snapshot_hours``."""
    step = run.parameters.snapshot_hours * 3_600
    while True:
        run.snapshots.append(snapshot(run))
        yield step
        progress.advance(run.parameters.snapshot_hours)


def snapshot(run: SwitchRun) -> dict:
    now = run.clock.now()
    with Session(run.ctx.reader) as session:
        portal = admin.find_portal(session, PORTAL)
        states = admin.user_states(session, portal.id, now)
    internal = [state for state in states if state.kind == UserKind.INTERNAL]
    by_state = Counter(state.state for state in internal)
    on = run.driver.switch_on
    counts = run.counts
    return {
        "hours": (now - run.start) // 3_600,
        "switch_on": on,
        "internal_users": len(internal),
        "active_enrollments": by_state["active"],
        "pending_enrollments": by_state["pending"],
        "users_needing_enrollment": len(internal) - by_state["active"] if on else 0,
        "sign_ins_with_code": counts["code: signed in"]
        + counts["first code: signed in"],
        "internal_sign_ins_without_code": counts["password: signed in without a code"],
        "enrollments_abandoned": counts["enrollment: abandoned"],
        "older_entry_codes_tried": sum(
            value
            for key, value in counts.items()
            if key.startswith("older entry code:") and "skipped" not in key
        ),
        "older_entry_codes_accepted": counts["older entry code: signed_in"],
        "customer_sign_ins": counts["customer sign-in: signed in"],
        "customer_sign_ins_refused": run.actions["customer sign-in"]
        - counts["customer sign-in: signed in"],
        "resets": run.actions["reset"],
    }


def build_report(
    run: SwitchRun, parameters: Parameters, seed: int, other_portal_unchanged: bool
) -> dict:
    counts = run.counts
    if not other_portal_unchanged:
        raise SimulationError("the other portal in the database changed during the run")
    return {
        "scenario": "switch",
        "seed": seed,
        "parameters": as_dict(parameters),
        "events_by_action": dict(sorted(counts.items())),
        "other_portal_unchanged": other_portal_unchanged,
        "invariant_checks": run.checker.checks,
    }


def charts(result: Result) -> list[alt.Chart]:
    """Build the report's charts: users needing enrollment, and the counters over time."""
    summary = result.summary
    needing = (
        alt.Chart(summary)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("hours:Q", title="hours since the start"),
            y=alt.Y(
                "users_needing_enrollment:Q", title="internal users needing enrollment"
            ),
            tooltip=[
                "hours",
                "switch_on",
                "users_needing_enrollment",
                "active_enrollments",
            ],
        )
        .properties(title="Users needing enrollment", width=600)
    )
    columns = [
        "sign_ins_with_code",
        "customer_sign_ins",
        "older_entry_codes_tried",
        "older_entry_codes_accepted",
        "resets",
    ]
    long = summary.melt(id_vars=["hours"], value_vars=columns, var_name="counter")
    counters = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=alt.X("hours:Q", title="hours since the start"),
            y=alt.Y("value:Q", title="count so far"),
            color=alt.Color("counter:N"),
            tooltip=["hours", "counter", "value"],
        )
        .properties(title="Sign-ins, older entry codes and resets so far", width=600)
    )
    return [needing, counters]
