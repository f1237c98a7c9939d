"""Drift: phones with clock offsets, slow clock drift and typing delays sign in over days.

Each user's phone starts with a fixed clock offset (normal, mean 0,
``offset_sd_seconds``) and runs fast or slow at a fixed rate (normal, mean 0,
``drift_sd_ppm``). At each sign-in the user reads the code at a uniformly
random second and the server checks it ``typing_delay_seconds`` later on
average. The same users, moments and delays run in six configurations: window
0, 1 and 2, each with drift tracking off (drift limit 0) and on (the portal
default). The output is the acceptance rate by offset bucket and by day.

Users enroll at the start with a code of the server's own time step, so every
enrollment starts with drift 0. Each sign-in is one code check through
``verify_for_user``; a rejected code is not retried. Sign-ins of a user are at
least 18 minutes apart, longer than the longest code lock (15 minutes), so a
lock never decides an outcome.

With drift tracking off, a code is accepted with the closed-form probability
of ``analytic.acceptance_probabilities`` for the offset and delay of that
attempt. The report compares the observed count in every offset bucket with
the sum of those probabilities, in binomial standard errors.

Up to ``core_users`` users per configuration go through the core. The others
follow an acceptance model: a code is accepted when its step offset is within
the window around 0 or around the remembered drift and its step is after the
last accepted one, and the drift becomes the offset, clamped to the limit.
The model runs for the core users too, and every one of their attempts must
give the same outcome and drift as the core. The exception is a code that
equals the code of another candidate step (probability about 10^-6 per step),
which the report counts as a collision.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from core import admin
from core.models import SecuritySettings, UserKind
from core.sandbox import SANDBOX_PORTAL, SANDBOX_START, Sandbox
from core.signin import Status
from core.verification import Rejection, verify_for_user
from simulations import analytic
from simulations.errors import ModelMismatch, SimulationError
from simulations.invariants import InvariantChecker
from simulations.params import as_dict, parameter
from simulations.result import Progress, ProgressCallback, Result
from simulations.scheduler import Scheduler
from simulations.world import (
    OWNER,
    PERIOD,
    PortalDriver,
    active_enrollment,
    code_matches_any,
)

WINDOWS = (0, 1, 2)
DRIFT_LIMIT_ON = SecuritySettings.model_fields["drift_limit"].default
SECONDS_PER_DAY = 86_400
# Sign-ins start an hour after the enrollments. A phone would need to be an
# hour behind, 6 standard deviations at the largest offset_sd_seconds, to show
# a code of the enrollment's step or earlier at its first sign-in.
FIRST_SIGN_IN_AFTER_SECONDS = 3_600
# Room left at the end of each sign-in slot, so that consecutive checks of a
# user are more than the longest lock (900 s) apart.
SLOT_MARGIN_SECONDS = 1_200
MAX_TYPING_DELAY_SECONDS = 120
TYPING_DELAY_SHAPE = 4.0  # gamma shape: a typing delay's sd is half its mean
OFFSET_BUCKET_EDGES = tuple(range(-90, 91, 15))
MAX_STANDARD_ERRORS = 4.0
PASSWORD = "drift-sim-password"

# Outcome codes in the result arrays, and their names in the events table.
ACCEPTED, WRONG_CODE, REPLAY, LOCKED, OTHER = range(5)
OUTCOME_NAMES = ("accepted", "wrong_code", "replay", "locked", "other")
_REJECTION_CODES = {
    Rejection.WRONG_CODE: WRONG_CODE,
    Rejection.REPLAY: REPLAY,
    Rejection.LOCKED: LOCKED,
}


@dataclass(frozen=True)
class Parameters:
    users: int = parameter(50, "internal users, each with one phone", 1, 100_000)
    days: int = parameter(3, "simulated days of sign-ins", 1, 365)
    sign_ins_per_day: int = parameter(2, "sign-ins per user per day", 1, 24)
    offset_sd_seconds: float = parameter(
        20.0,
        "standard deviation of the phones' clock offsets at the start, in seconds "
        "(normal, mean 0)",
        0,
        600,
    )
    drift_sd_ppm: float = parameter(
        20.0,
        "standard deviation of the phones' clock rates, in parts per million "
        "(normal, mean 0; 1 ppm is 0.0864 s a day)",
        0,
        1_000,
    )
    typing_delay_seconds: float = parameter(
        8.0,
        "mean time from reading a code to the server checking it, in seconds "
        "(gamma with shape 4, rounded, 1 to 120 s)",
        1,
        60,
    )
    core_users: int = parameter(
        500,
        "at most this many users per configuration sign in through the core; "
        "the others follow the acceptance model",
        1,
        100_000,
    )


@dataclass(frozen=True)
class Plan:
    """Every random draw of a run, shared by the six configurations."""

    enroll_time: int
    sign_ins_per_day: int
    moments: np.ndarray  # (users, attempts) Unix seconds at which the code is read
    delays: np.ndarray  # (users, attempts) whole seconds from reading to the check
    offsets: np.ndarray  # (users, attempts) phone clock offset at reading, seconds
    code_steps: np.ndarray  # time step of the code the phone shows
    server_steps: np.ndarray  # time step of the server at the check

    @property
    def users(self) -> int:
        return self.moments.shape[0]

    @property
    def attempts(self) -> int:
        return self.moments.shape[1]


@dataclass
class Outcomes:
    """Per attempt: outcome code, remembered drift afterwards, and where it came from."""

    codes: np.ndarray
    drift_after: np.ndarray

    @classmethod
    def empty(cls, users: int, attempts: int) -> Outcomes:
        return cls(
            np.full((users, attempts), OTHER, dtype=np.int8),
            np.zeros((users, attempts), dtype=np.int16),
        )


def make_plan(parameters: Parameters, seed: int) -> Plan:
    """Draw offsets, rates, sign-in moments and typing delays from the seed."""
    rng = np.random.default_rng(seed)
    users = parameters.users
    per_day = parameters.sign_ins_per_day
    attempts = parameters.days * per_day

    start_offsets = rng.normal(0.0, parameters.offset_sd_seconds, users)
    rates_ppm = rng.normal(0.0, parameters.drift_sd_ppm, users)

    # Each day has per_day slots. The reading second is uniform over a whole
    # number of time steps inside the slot, so its phase in the step is uniform.
    slot = SECONDS_PER_DAY // per_day
    usable = (slot - SLOT_MARGIN_SECONDS) // PERIOD * PERIOD
    enroll_time = SANDBOX_START
    first = enroll_time + FIRST_SIGN_IN_AFTER_SECONDS
    slot_starts = first + np.arange(attempts) // per_day * SECONDS_PER_DAY
    slot_starts = slot_starts + np.arange(attempts) % per_day * slot
    moments = slot_starts[None, :] + rng.integers(0, usable, (users, attempts))

    mean = parameters.typing_delay_seconds
    delays = rng.gamma(TYPING_DELAY_SHAPE, mean / TYPING_DELAY_SHAPE, (users, attempts))
    delays = np.clip(np.rint(delays), 1, MAX_TYPING_DELAY_SECONDS).astype(np.int64)

    elapsed = (moments - enroll_time).astype(float)
    offsets = start_offsets[:, None] + rates_ppm[:, None] * 1e-6 * elapsed
    code_steps = np.floor((moments + offsets) / PERIOD).astype(np.int64)
    server_steps = (moments + delays) // PERIOD
    return Plan(
        enroll_time, per_day, moments, delays, offsets, code_steps, server_steps
    )


def model_outcomes(plan: Plan, window: int, drift_limit: int) -> Outcomes:
    """Apply the acceptance model to every user at once, one attempt column at a time."""
    outcomes = Outcomes.empty(plan.users, plan.attempts)
    last_step = np.full(plan.users, plan.enroll_time // PERIOD, dtype=np.int64)
    drift = np.zeros(plan.users, dtype=np.int64)
    for attempt in range(plan.attempts):
        code_step = plan.code_steps[:, attempt]
        offset = code_step - plan.server_steps[:, attempt]
        matched = (np.abs(offset) <= window) | (np.abs(offset - drift) <= window)
        accepted = matched & (code_step > last_step)

        outcomes.codes[:, attempt] = np.where(
            accepted, ACCEPTED, np.where(matched, REPLAY, WRONG_CODE)
        )
        last_step = np.where(accepted, code_step, last_step)
        drift = np.where(accepted, np.clip(offset, -drift_limit, drift_limit), drift)
        outcomes.drift_after[:, attempt] = drift
    return outcomes


def simulate(
    parameters: Parameters, seed: int, on_progress: ProgressCallback | None = None
) -> Result:
    plan = make_plan(parameters, seed)
    core_count = min(parameters.core_users, parameters.users)
    configurations = [
        (window, drift_limit)
        for window in WINDOWS
        for drift_limit in (0, DRIFT_LIMIT_ON)
    ]
    progress = Progress(
        on_progress, len(configurations) * core_count * (plan.attempts + 1)
    )

    frames = []
    validation = {"core_users": core_count, "validated_attempts": 0, "collisions": []}
    checks = 0
    for window, drift_limit in configurations:
        core, phones, invariant_checks = run_core(
            plan, window, drift_limit, core_count, progress
        )
        checks += invariant_checks
        model = model_outcomes(plan, window, drift_limit)
        validated, collisions = compare_with_model(
            plan, core, model, phones, window, drift_limit
        )
        validation["validated_attempts"] += validated
        validation["collisions"] += [
            {"window": window, "drift_limit": drift_limit, **collision}
            for collision in collisions
        ]
        frames.append(events_frame(plan, core, model, core_count, window, drift_limit))
    progress.finish()

    events = pd.concat(frames, ignore_index=True)
    by_offset = offset_table(events)
    summary = daily_summary(events)
    report = build_report(parameters, seed, events, by_offset, validation, checks)
    return Result(events, summary, report, {"by-offset": by_offset})


@dataclass
class CorePortal:
    """A sandbox portal whose first users are enrolled, ready for the sign-ins of a plan."""

    sandbox: Sandbox
    scheduler: Scheduler
    driver: PortalDriver
    names: list[str]
    enrollments: dict[str, int]  # enrollment id by username

    def close(self) -> None:
        self.sandbox.close()


def enroll_core_users(
    plan: Plan, window: int, drift_limit: int, core_count: int, progress: Progress
) -> CorePortal:
    """Create a sandbox with the window and drift limit, and enroll ``core_count`` users.

    Each user enrolls at the plan's enrollment time with a code of the
    server's own time step, so every enrollment starts with drift 0.
    """
    sandbox = Sandbox.create(start=plan.enroll_time)
    scheduler = Scheduler(sandbox.clock)
    checker = InvariantChecker(sandbox.clock, lambda: scheduler.actions)
    driver = PortalDriver(sandbox.ctx, SANDBOX_PORTAL, checker)
    portal = CorePortal(sandbox, scheduler, driver, [], {})
    try:
        driver.know_user(OWNER, sandbox.passwords[OWNER], UserKind.INTERNAL)
        session = driver.owner_session()
        admin.set_window(sandbox.ctx, session, SANDBOX_PORTAL, window)
        admin.set_drift_limit(sandbox.ctx, SANDBOX_PORTAL, drift_limit)

        portal.names = [user_name(index) for index in range(core_count)]
        driver.add_users([(name, PASSWORD, "standard") for name in portal.names])
        driver.set_switch(True)
        for name in portal.names:
            result = driver.sign_in(name)
            if result.status != Status.SIGNED_IN:
                raise SimulationError(
                    f"enrollment of {name} failed: {result.status} ({result.reason})"
                )
            enrollment_id, _ = active_enrollment(sandbox.ctx, driver.ids[name])
            portal.enrollments[name] = enrollment_id
            progress.advance()
    except BaseException:
        portal.close()
        raise
    return portal


def run_core(
    plan: Plan, window: int, drift_limit: int, core_count: int, progress: Progress
) -> tuple[Outcomes, list, int]:
    """Enroll ``core_count`` users in a fresh sandbox and run their sign-ins through the core.

    Return the outcomes (rows past ``core_count`` stay OTHER), the users'
    pyotp entries and the number of invariant checks made.
    """
    portal = enroll_core_users(plan, window, drift_limit, core_count, progress)
    try:
        driver = portal.driver
        outcomes = Outcomes.empty(plan.users, plan.attempts)
        for index, name in enumerate(portal.names):
            actor = sign_in_actor(
                plan, index, name, driver, portal.enrollments[name], outcomes, progress
            )
            portal.scheduler.start(actor)
        portal.scheduler.run()
        phones = [driver.phones[name].current for name in portal.names]
        return outcomes, phones, driver.checker.checks
    finally:
        portal.close()


def sign_in_actor(
    plan: Plan,
    index: int,
    name: str,
    driver: PortalDriver,
    enrollment_id: int,
    outcomes: Outcomes,
    progress: Progress,
):
    """Run one user's sign-ins, each checked by the core at the end of its typing delay.

    The code is the one the phone showed at the reading moment. Its time step
    comes from the plan, so the actor wakes only once per sign-in, at the check.
    """
    ctx = driver.ctx
    clock = ctx.clock
    user_id = driver.ids[name]
    phone = driver.phones[name].current
    checker = driver.checker
    check_times = (plan.moments[index] + plan.delays[index]).tolist()
    code_steps = plan.code_steps[index].tolist()
    codes = outcomes.codes[index]
    drift_after = outcomes.drift_after[index]
    drift = 0
    for attempt, check_time in enumerate(check_times):
        yield check_time - clock.now()
        code = phone.generate_otp(code_steps[attempt])

        verdict = verify_for_user(ctx, user_id, code)
        if verdict.accepted:
            checker.step_accepted(name, enrollment_id, verdict.step)
            drift = verdict.drift
            codes[attempt] = ACCEPTED
        else:
            codes[attempt] = _REJECTION_CODES.get(verdict.rejection, OTHER)
        drift_after[attempt] = drift
        progress.advance()


def compare_with_model(
    plan: Plan,
    core: Outcomes,
    model: Outcomes,
    phones: list,
    window: int,
    drift_limit: int,
) -> tuple[int, list[dict]]:
    """Check the model against the core users' outcomes, attempt by attempt.

    Return the number of attempts compared and the collisions found. A
    difference without a collision raises ModelMismatch.
    """
    core_count = len(phones)
    differs = (core.codes[:core_count] != model.codes[:core_count]) | (
        core.drift_after[:core_count] != model.drift_after[:core_count]
    )
    validated = core_count * plan.attempts
    collisions = []
    for index in np.flatnonzero(differs.any(axis=1)):
        attempt = int(np.flatnonzero(differs[index])[0])
        code_step = int(plan.code_steps[index, attempt])
        server_step = int(plan.server_steps[index, attempt])
        reach = window + drift_limit + 1
        others = [
            step
            for step in range(server_step - reach, server_step + reach + 1)
            if step != code_step
        ]
        code = phones[index].generate_otp(code_step)
        if not code_matches_any(phones[index], code, others):
            raise ModelMismatch(
                f"the acceptance model differs from the core for user "
                f"{user_name(index)} at attempt {attempt} (window {window}, drift "
                f"limit {drift_limit}): core {OUTCOME_NAMES[core.codes[index, attempt]]} "
                f"with drift {core.drift_after[index, attempt]}, model "
                f"{OUTCOME_NAMES[model.codes[index, attempt]]} with drift "
                f"{model.drift_after[index, attempt]}"
            )
        validated -= plan.attempts - attempt
        collisions.append({"user": user_name(index), "attempt": attempt})
    return validated, collisions


def user_name(index: int) -> str:
    return f"u{index:05d}"


def events_frame(
    plan: Plan,
    core: Outcomes,
    model: Outcomes,
    core_count: int,
    window: int,
    drift_limit: int,
) -> pd.DataFrame:
    """Build one row per attempt; core users' rows come from the core, the rest from the model."""
    codes = model.codes.copy()
    drift_after = model.drift_after.copy()
    codes[:core_count] = core.codes[:core_count]
    drift_after[:core_count] = core.drift_after[:core_count]

    users, attempts = plan.moments.shape
    per_day = plan.sign_ins_per_day
    user_index = np.repeat(np.arange(users), attempts)
    attempt_index = np.tile(np.arange(attempts), users)
    offsets = plan.offsets.ravel()
    delays = plan.delays.ravel()
    return pd.DataFrame(
        {
            "window": np.full(users * attempts, window, dtype=np.int8),
            "drift_tracking": np.full(users * attempts, drift_limit > 0),
            "path": pd.Categorical.from_codes(
                (user_index >= core_count).astype(np.int8), ["core", "model"]
            ),
            "user": user_index.astype(np.int32),
            "day": (attempt_index // per_day).astype(np.int16),
            "attempt": attempt_index.astype(np.int16),
            "check_time_seconds": (
                plan.moments.ravel() + delays - plan.enroll_time
            ).astype(np.int64),
            "offset_seconds": np.round(offsets, 3),
            "delay_seconds": delays.astype(np.int16),
            "code_offset_steps": (
                plan.code_steps.ravel() - plan.server_steps.ravel()
            ).astype(np.int16),
            "outcome": pd.Categorical.from_codes(codes.ravel(), OUTCOME_NAMES),
            "accepted": codes.ravel() == ACCEPTED,
            "drift_after_steps": drift_after.ravel(),
            "p_accept_without_tracking": np.round(
                analytic.acceptance_probabilities(offsets, delays, window), 6
            ),
        }
    )


def offset_table(events: pd.DataFrame) -> pd.DataFrame:
    """Acceptance by offset bucket and configuration, beside the closed form without tracking."""
    edges = [-np.inf, *OFFSET_BUCKET_EDGES, np.inf]
    labels = [
        f"{_edge_label(low)} to {_edge_label(high)} s"
        for low, high in zip(edges[:-1], edges[1:], strict=True)
    ]
    bucket = pd.cut(events["offset_seconds"], edges, right=False, labels=labels)

    p = events["p_accept_without_tracking"]
    table = (
        events.assign(
            offset_bucket=bucket,
            bucket_order=bucket.cat.codes,
            p=p,
            variance=p * (1 - p),
        )
        .groupby(
            ["window", "drift_tracking", "bucket_order", "offset_bucket"], observed=True
        )
        .agg(
            attempts=("accepted", "size"),
            accepted=("accepted", "sum"),
            expected_accepted=("p", "sum"),
            variance=("variance", "sum"),
        )
        .reset_index()
    )

    table["acceptance_rate"] = table["accepted"] / table["attempts"]
    table["closed_form_rate"] = table["expected_accepted"] / table["attempts"]

    deviation = table["accepted"] - table["expected_accepted"]
    spread = np.sqrt(table["variance"])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            spread > 0,
            deviation / spread,
            np.where(deviation.abs() < 1e-9, 0.0, np.inf),
        )
    # The closed form holds only without drift tracking.
    table["standard_errors_from_closed_form"] = np.where(
        table["drift_tracking"], np.nan, np.round(z, 6)
    )

    table["expected_accepted"] = table["expected_accepted"].round(6)
    table["closed_form_rate"] = table["closed_form_rate"].round(6)
    table["acceptance_rate"] = table["acceptance_rate"].round(6)
    return table.drop(columns=["variance"])


def _edge_label(edge: float) -> str:
    if np.isinf(edge):
        return "-inf" if edge < 0 else "inf"
    return str(int(edge))


def daily_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Acceptance per day and configuration: the summary per simulation step."""
    summary = (
        events.groupby(["day", "window", "drift_tracking"])
        .agg(attempts=("accepted", "size"), accepted=("accepted", "sum"))
        .reset_index()
    )
    summary["acceptance_rate"] = (summary["accepted"] / summary["attempts"]).round(6)
    return summary


def build_report(
    parameters: Parameters,
    seed: int,
    events: pd.DataFrame,
    by_offset: pd.DataFrame,
    validation: dict,
    checks: int,
) -> dict:
    totals = (
        events.groupby(["window", "drift_tracking"])["accepted"]
        .agg(["size", "sum"])
        .reset_index()
    )
    rates = [
        {
            "window": int(row.window),
            "drift_tracking": bool(row.drift_tracking),
            "attempts": int(row.size),
            "accepted": int(row.sum),
            "acceptance_rate": round(float(row.sum / row.size), 6),
        }
        for row in totals.itertuples()
    ]
    untracked = by_offset[~by_offset["drift_tracking"]]
    worst = float(untracked["standard_errors_from_closed_form"].abs().max())
    return {
        "scenario": "drift",
        "seed": seed,
        "parameters": as_dict(parameters),
        "acceptance": rates,
        "closed_form_check": {
            "max_standard_errors": round(worst, 6),
            "limit_standard_errors": MAX_STANDARD_ERRORS,
            "agrees": worst <= MAX_STANDARD_ERRORS,
        },
        "model_validation": validation,
        "invariant_checks": checks,
    }


def charts(result: Result) -> list[alt.Chart]:
    """Build the report's charts: acceptance by offset bucket, and by day."""
    by_offset = result.tables["by-offset"].copy()
    by_offset["drift tracking"] = np.where(by_offset["drift_tracking"], "on", "off")
    order = list(by_offset.sort_values("bucket_order")["offset_bucket"].unique())
    base = alt.Chart(by_offset).encode(
        x=alt.X("offset_bucket:N", sort=order, title="phone clock offset"),
        color=alt.Color("window:N", title="window (steps)"),
    )
    simulated = base.mark_line(point=True).encode(
        y=alt.Y(
            "acceptance_rate:Q", title="acceptance rate", scale=alt.Scale(domain=[0, 1])
        ),
        tooltip=[
            "offset_bucket",
            "window",
            "attempts",
            "accepted",
            "acceptance_rate",
            "closed_form_rate",
        ],
    )
    closed_form = base.mark_point(shape="diamond", size=70).encode(
        y="closed_form_rate:Q"
    )
    by_bucket = (
        alt.layer(simulated, closed_form)
        .properties(width=320)
        .facet(column=alt.Column("drift tracking:N"))
        .properties(
            title="Acceptance by phone clock offset "
            "(diamonds: closed form without drift tracking)"
        )
    )

    summary = result.summary.copy()
    summary["configuration"] = [
        f"window {w}, tracking {'on' if t else 'off'}"
        for w, t in zip(summary["window"], summary["drift_tracking"], strict=True)
    ]
    by_day = (
        alt.Chart(summary)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:O", title="day"),
            y=alt.Y(
                "acceptance_rate:Q",
                title="acceptance rate",
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color("configuration:N"),
            tooltip=["day", "configuration", "attempts", "accepted", "acceptance_rate"],
        )
        .properties(title="Acceptance by day", width=500)
    )
    return [by_bucket, by_day]
