"""Brute force: an attacker with the password guesses codes as fast as throttling allows.

The attacker submits a guess every ``guess_seconds`` and, when the response
reports that code entry is locked, waits until the lock ends. The victim signs in
``legit_sign_ins_per_day`` times a day; a correct code clears the failure
count, and a sign-in that finds the lock is counted as denied.

Millions of guesses through the database would be too slow, so the scenario
uses a model of the throttle and validates it against the core:

1. Core sample: for ``validation_hours``, the attacker and the victim act on
   a sandbox through the core's sign-in with the core's throttle. The
   attacker's guesses are drawn at random among codes that the core is sure
   to reject, so the sample measures when the core lets a guess through.
2. Model: the same two actors, on the same moments, against a model of the
   throttle (free failures, then a lock that doubles up to a maximum). Over
   the validation horizon its guesses, failure counts, locks and the
   victim's outcomes must equal the core sample's exactly, or the run stops
   with ModelMismatch.
3. The model then runs the whole horizon of ``days`` for each throttle
   setting: the core's own, stricter and more lenient ones, and none.

Each guess is checked against the core's candidate time steps, 2·window + 1
plus those around a remembered drift (``drift_steps``), so a random guess is
right with probability q = 1 - (1 - 10^-6)^k for k candidate steps. After G
guesses the attacker has succeeded with probability 1 - (1 - q)^G, which the
union bound G·k/10^6 caps from above. The simulated rate comes from
``trials`` attackers per setting, each drawing the number of its first right
guess from a geometric distribution, and must lie within 4 standard errors
of the exact value. Guesses that equal a code of an already accepted step
would be rejected as replays, so the bound also holds for the real core.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from core import verification
from core.clock import ManualClock
from core.models import UserKind
from core.sandbox import SANDBOX_PORTAL, SANDBOX_START, Sandbox
from core.signin import CHALLENGE_SECONDS, Reason, Status
from simulations import analytic
from simulations.errors import ModelMismatch, SimulationError
from simulations.invariants import InvariantChecker
from simulations.params import as_dict, parameter
from simulations.result import Progress, ProgressCallback, Result
from simulations.scheduler import Scheduler
from simulations.world import OWNER, PERIOD, PortalDriver, code_matches_any

VICTIM = "victim"
VICTIM_PASSWORD = "brute-force-victim-password"
SECONDS_PER_DAY = 86_400
WINDOWS = (0, 1, 2)
MAX_STANDARD_ERRORS = 4.0
# Every step the core could check a guess against, with room to spare.
WRONG_CODE_REACH_STEPS = 8


@dataclass(frozen=True)
class Throttle:
    """A lock schedule: ``free_failures`` wrong codes, then a lock that doubles up to a maximum."""

    name: str
    free_failures: int | None  # None: never locks
    first_lock_seconds: int = 0
    max_lock_seconds: int = 0

    def lock_seconds(self, failures: int) -> int:
        if self.free_failures is None or failures < self.free_failures:
            return 0
        doublings = min(failures - self.free_failures, 32)
        return min(self.first_lock_seconds * 2**doublings, self.max_lock_seconds)


CORE_THROTTLE = Throttle(
    "core",
    verification.LOCK_AFTER_FAILURES,
    verification.FIRST_LOCK_SECONDS,
    verification.MAX_LOCK_SECONDS,
)
THROTTLES = (
    CORE_THROTTLE,
    Throttle("strict", 3, 60, 3_600),
    Throttle("lenient", 10, 10, 300),
    Throttle("none", None),
)


@dataclass(frozen=True)
class Parameters:
    days: int = parameter(30, "horizon of the attack, in days", 1, 365)
    guess_seconds: int = parameter(
        2, "seconds one guess takes the attacker (password step and code)", 1, 3_600
    )
    legit_sign_ins_per_day: int = parameter(
        2, "the victim's own sign-ins per day", 0, 24
    )
    drift_steps: int = parameter(
        0,
        "drift the core remembers for the victim, in time steps; it adds candidate steps",
        0,
        10,
    )
    trials: int = parameter(
        200_000, "simulated attackers per throttle setting and window", 100, 10_000_000
    )
    validation_hours: int = parameter(
        6, "hours of the attack run through the core to validate the model", 1, 72
    )
    checkpoint_hours: int = parameter(6, "hours between two summary rows", 1, 24 * 30)


class ModelBackend:
    """The throttle as arithmetic: failure count and lock end, as the core keeps them."""

    def __init__(self, throttle: Throttle, clock) -> None:
        self.throttle = throttle
        self.clock = clock
        self.failures = 0
        self.locked_until = 0
        self.guess_times = array("q")
        self.denied_times = array("q")
        self.rows: list[tuple] | None = []

    def guess(self) -> tuple[bool, int]:
        """Count one wrong guess unless locked; return (evaluated, lock end or 0)."""
        now = self.clock.now()
        if self.locked_until > now:
            self._record("attacker", "locked", self.locked_until)
            return False, self.locked_until
        self.failures += 1
        seconds = self.throttle.lock_seconds(self.failures)
        new_lock = now + seconds if seconds else 0
        if new_lock:
            self.locked_until = new_lock
        self.guess_times.append(now)
        self._record("attacker", "wrong guess", new_lock)
        return True, new_lock

    def legit_sign_in(self) -> None:
        now = self.clock.now()
        if self.locked_until > now:
            self.denied_times.append(now)
            self._record("victim", "locked", self.locked_until)
            return
        self.failures = 0
        self.locked_until = 0
        self._record("victim", "signed in", 0)

    def _record(self, actor: str, outcome: str, locked_until: int) -> None:
        if self.rows is not None:
            self.rows.append(
                (self.clock.now(), actor, outcome, self.failures, locked_until)
            )


class CoreBackend:
    """The same two actions through the core's sign-in on a sandbox."""

    def __init__(
        self, sandbox: Sandbox, driver: PortalDriver, rng: np.random.Generator
    ):
        self.sandbox = sandbox
        self.driver = driver
        self.rng = rng
        self.clock = sandbox.clock
        self.challenge: str | None = None
        self.challenge_ends = 0
        self.failures = 0
        self.rows: list[tuple] = []

    def guess(self) -> tuple[bool, int]:
        now = self.clock.now()
        if self.challenge is None or now >= self.challenge_ends:
            result = self.driver.submit_password(VICTIM)
            if result.status == Status.LOCKED:
                self.rows.append(
                    (now, "attacker", "locked", result.failures, result.locked_until)
                )
                return False, result.locked_until
            self.challenge = result.challenge
            self.challenge_ends = now + CHALLENGE_SECONDS

        result = self.driver.submit_code(VICTIM, self.challenge, self.wrong_code())
        if result.status == Status.SIGNED_IN:
            raise SimulationError("a guess chosen to be wrong signed the attacker in")
        if result.reason == Reason.SIGN_IN_EXPIRED:
            raise SimulationError("the attacker's sign-in expired before its end time")
        if result.reason == Reason.LOCKED and result.failures == self.failures:
            self.rows.append(
                (now, "attacker", "locked", result.failures, result.locked_until)
            )
            return False, result.locked_until or 0
        self.failures = result.failures
        locked_until = result.locked_until or 0
        self.rows.append(
            (now, "attacker", "wrong guess", result.failures, locked_until)
        )
        return True, locked_until

    def legit_sign_in(self) -> None:
        now = self.clock.now()
        result = self.driver.submit_password(VICTIM)
        if result.status == Status.LOCKED:
            self.rows.append(
                (now, "victim", "locked", result.failures, result.locked_until)
            )
            return
        code, _ = self.driver.phones[VICTIM].code(now)
        result = self.driver.submit_code(VICTIM, result.challenge, code)
        if result.status != Status.SIGNED_IN:
            raise SimulationError(
                f"the victim's own code was rejected: {result.reason}"
            )
        self.failures = 0
        self.rows.append((now, "victim", "signed in", 0, 0))

    def wrong_code(self) -> str:
        """Draw a random code that equals no code of the victim near the current step."""
        entry = self.driver.phones[VICTIM].current
        step = self.clock.now() // PERIOD
        steps = range(step - WRONG_CODE_REACH_STEPS, step + WRONG_CODE_REACH_STEPS + 1)
        while True:
            code = (
                f"{int(self.rng.integers(0, 10**analytic.DIGITS)):0{analytic.DIGITS}d}"
            )
            if not code_matches_any(entry, code, steps):
                return code


def attacker_actor(backend, clock, guess_seconds: int):
    """Guess, and wait for the next guess or for the lock to end, whichever is later."""
    while True:
        _, locked_until = backend.guess()
        yield max(guess_seconds, locked_until - clock.now())


def victim_actor(backend, clock, moments: np.ndarray):
    for moment in moments:
        yield int(moment) - clock.now()
        backend.legit_sign_in()


def victim_moments(parameters: Parameters, seed: int, start: int) -> np.ndarray:
    """Draw the victim's sign-in moments: one uniform second in each slot of each day."""
    rng = np.random.default_rng(seed)
    per_day = parameters.legit_sign_ins_per_day
    if per_day == 0:
        return np.zeros(0, dtype=np.int64)
    slot = SECONDS_PER_DAY // per_day
    count = parameters.days * per_day
    slot_starts = start + np.arange(count) * slot
    # Start the first slot a minute in, so that the victim never acts at the
    # very second of the attacker's first guess.
    return slot_starts + 60 + rng.integers(0, slot - 60, count)


def run_model(
    throttle: Throttle,
    parameters: Parameters,
    moments,
    start: int,
    end: int,
    keep_rows: bool,
):
    clock = ManualClock(start)
    backend = ModelBackend(throttle, clock)
    if not keep_rows:
        backend.rows = None
    scheduler = Scheduler(clock)
    scheduler.start(victim_actor(backend, clock, moments[moments < end]))
    scheduler.start(attacker_actor(backend, clock, parameters.guess_seconds))
    scheduler.run(until=end - 1)
    return backend


def run_core_sample(
    parameters: Parameters, seed: int, moments, start: int, end: int
) -> tuple[list, int]:
    """Run the attack through the core for the validation horizon; return rows and checks."""
    sandbox = Sandbox.create(start=start - PERIOD)
    try:
        scheduler = Scheduler(sandbox.clock)
        checker = InvariantChecker(sandbox.clock, lambda: scheduler.actions)
        driver = PortalDriver(sandbox.ctx, SANDBOX_PORTAL, checker)
        driver.know_user(OWNER, sandbox.passwords[OWNER], UserKind.INTERNAL)
        driver.add_users([(VICTIM, VICTIM_PASSWORD, "standard")])
        driver.set_switch(True)
        if driver.sign_in(VICTIM).status != Status.SIGNED_IN:
            raise SimulationError("the victim could not enroll")
        sandbox.clock.set(start)

        backend = CoreBackend(sandbox, driver, np.random.default_rng([seed, 1]))
        scheduler.start(victim_actor(backend, sandbox.clock, moments[moments < end]))
        scheduler.start(
            attacker_actor(backend, sandbox.clock, parameters.guess_seconds)
        )
        scheduler.run(until=end - 1)
        return backend.rows, checker.checks
    finally:
        sandbox.close()


def validate_lock_schedule() -> None:
    """Check that the model's core throttle locks exactly as core.verification does."""
    for failures in range(0, 64):
        model = CORE_THROTTLE.lock_seconds(failures)
        core = verification.lock_seconds(failures)
        if model != core:
            raise ModelMismatch(
                f"lock after {failures} failures: model {model} s, core {core} s"
            )


def check_model_matches_core(core_rows: list[tuple], model_rows: list[tuple]) -> None:
    """Raise ModelMismatch at the first event where the model and the core differ."""
    if core_rows == model_rows:
        return
    pairs = zip(core_rows, model_rows, strict=False)  # lengths may differ
    first = next(
        (index for index, (core, model) in enumerate(pairs) if core != model),
        min(len(core_rows), len(model_rows)),
    )
    raise ModelMismatch(
        f"the throttle model differs from the core at event {first}: core "
        f"{core_rows[first : first + 1]}, model {model_rows[first : first + 1]}"
    )


def simulate(
    parameters: Parameters, seed: int, on_progress: ProgressCallback | None = None
) -> Result:
    validate_lock_schedule()
    start = SANDBOX_START
    end = start + parameters.days * SECONDS_PER_DAY
    moments = victim_moments(parameters, seed, start)
    progress = Progress(on_progress, len(THROTTLES) + 1)

    validation_end = start + parameters.validation_hours * 3_600
    core_rows, checks = run_core_sample(
        parameters, seed, moments, start, validation_end
    )
    model_rows = run_model(
        CORE_THROTTLE, parameters, moments, start, validation_end, True
    ).rows
    check_model_matches_core(core_rows, model_rows)
    progress.advance()

    checkpoints = np.arange(0, parameters.days * 24 + 1, parameters.checkpoint_hours)
    rng = np.random.default_rng([seed, 2])
    frames = []
    for throttle in THROTTLES:
        backend = run_model(throttle, parameters, moments, start, end, False)
        frames.append(
            throttle_summary(throttle, backend, parameters, checkpoints, start, rng)
        )
        progress.advance()
    progress.finish()

    summary = pd.concat(frames, ignore_index=True)
    events = events_frame(core_rows, model_rows, start)
    report = build_report(parameters, seed, summary, len(core_rows), checks)
    return Result(events, summary, report)


def throttle_summary(
    throttle, backend, parameters, checkpoints, start, rng
) -> pd.DataFrame:
    """Guesses, denials and success probabilities at each checkpoint, for every window."""
    times = start + checkpoints * 3_600
    guesses = np.searchsorted(np.asarray(backend.guess_times), times, side="right")
    denied = np.searchsorted(np.asarray(backend.denied_times), times, side="right")
    rows = []
    for window in WINDOWS:
        candidates = analytic.accepted_codes_per_guess(window, parameters.drift_steps)
        per_guess = analytic.guess_success_probability(candidates)
        first_right = np.sort(rng.geometric(per_guess, parameters.trials))
        simulated = (
            np.searchsorted(first_right, guesses, side="right") / parameters.trials
        )
        exact = analytic.success_exact(guesses, candidates)
        rows.append(
            pd.DataFrame(
                {
                    "hours": checkpoints,
                    "throttle": throttle.name,
                    "window": window,
                    "candidate_steps": candidates,
                    "guesses": guesses,
                    "legit_sign_ins_denied": denied,
                    "success_bound": np.round(
                        analytic.success_bound(guesses, candidates), 9
                    ),
                    "success_exact": np.round(exact, 9),
                    "success_simulated": np.round(simulated, 9),
                    "standard_error": np.round(
                        analytic.binomial_standard_error(exact, parameters.trials), 9
                    ),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def events_frame(core_rows, model_rows, start) -> pd.DataFrame:
    columns = ["time_seconds", "actor", "outcome", "failures", "locked_until_seconds"]
    frames = []
    for path, rows in (("core", core_rows), ("model", model_rows)):
        frame = pd.DataFrame(rows, columns=columns)
        frame["time_seconds"] -= start
        frame["locked_until_seconds"] = np.where(
            frame["locked_until_seconds"] > 0, frame["locked_until_seconds"] - start, 0
        )
        frame.insert(0, "path", path)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def build_report(parameters, seed, summary, sample_events, checks) -> dict:
    last = summary[summary["hours"] == summary["hours"].max()]
    deviation = (last["success_simulated"] - last["success_exact"]).abs()
    spread = last["standard_error"].where(last["standard_error"] > 0)
    worst = float((deviation / spread).fillna(0).max())
    final = [
        {
            "throttle": row.throttle,
            "window": int(row.window),
            "guesses": int(row.guesses),
            "success_bound": float(row.success_bound),
            "success_exact": float(row.success_exact),
            "success_simulated": float(row.success_simulated),
            "legit_sign_ins_denied": int(row.legit_sign_ins_denied),
        }
        for row in last.itertuples()
    ]
    return {
        "scenario": "brute-force",
        "seed": seed,
        "parameters": as_dict(parameters),
        "at_horizon": final,
        "simulated_vs_exact": {
            "max_standard_errors": round(worst, 6),
            "limit_standard_errors": MAX_STANDARD_ERRORS,
            "agrees": worst <= MAX_STANDARD_ERRORS,
        },
        "model_validation": {
            "hours": parameters.validation_hours,
            "core_events": sample_events,
            "identical": True,
        },
        "invariant_checks": checks,
        "method": "core sample for validation_hours, then the validated throttle model",
    }


def charts(result: Result) -> list[alt.Chart]:
    """Build the report's chart: success probability over time beside the union bound."""
    summary = result.summary
    long = summary.melt(
        id_vars=["hours", "throttle", "window"],
        value_vars=["success_simulated", "success_bound"],
        var_name="series",
        value_name="probability",
    )
    long["series"] = long["series"].map(
        {"success_simulated": "simulated", "success_bound": "bound G·k/10^6"}
    )
    chart = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=alt.X("hours:Q", title="hours of attack"),
            y=alt.Y(
                "probability:Q",
                title="attacker success probability",
                scale=alt.Scale(type="symlog", constant=1e-4),
            ),
            color=alt.Color("throttle:N"),
            strokeDash=alt.StrokeDash("series:N"),
            column=alt.Column("window:N", title="window (steps)"),
            tooltip=["hours", "throttle", "window", "series", "probability"],
        )
        .properties(title="Brute-force success over time", width=260)
    )
    return [chart]
