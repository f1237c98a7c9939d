"""Replay: an attacker who saw a user's code submits it again, and two instances race.

The portal lives in a temporary SQLite file, opened by two app instances
(two Contexts with their own engines, on one simulated clock). The users sign
in on instance A and the attacker, who also has the password, on instance B.
Each sign-in is one trial of one case, drawn from the seed:

- ``after``: the user submits the code, then the attacker submits the same
  code ``replay_delay`` seconds later. The attacker must be rejected.
- ``before``: the attacker relays the code before the user has finished
  typing it. The attacker's first use is accepted, because TOTP cannot tell a
  relayed code from the user's. The user's submission of the same code must
  then be rejected as a replay, and the user's next code signs in.
- ``race``: both instances check the same code at the same moment, each in
  its own thread. Exactly one may accept it.

A replay is every submission of a code after its first one. The expected
number of replays accepted is zero, and an accepted replay stops the run with
an InvariantViolation.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
from cryptography.fernet import Fernet

from core import admin
from core.clock import ManualClock
from core.context import Context, open_context
from core.models import UserKind
from core.sandbox import SANDBOX_START
from core.signin import SignInResult, Status, submit_code
from simulations.errors import SimulationError
from simulations.invariants import InvariantChecker
from simulations.params import as_dict, parameter
from simulations.result import Progress, ProgressCallback, Result
from simulations.scheduler import Scheduler
from simulations.world import OWNER, PERIOD, PortalDriver

CASES = ("after", "before", "race")
PORTAL = "replay"
PORTAL_NAME = "Replay Billing"
OWNER_PASSWORD = "replay-owner-password"
USER_PASSWORD = "replay-user-password"
SECONDS_PER_DAY = 86_400
SLOT_MARGIN_SECONDS = 900
# Typing delays stay below one period, so with a window of 1 or more the
# user's own code is always within the window when it arrives.
MAX_TYPING_DELAY_SECONDS = PERIOD - 1
TYPING_DELAY_SHAPE = 4.0
DELAY_BUCKET_SECONDS = 30
RACE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Parameters:
    users: int = parameter(10, "internal users whose codes the attacker sees", 1, 1_000)
    days: int = parameter(2, "simulated days of sign-ins", 1, 60)
    sign_ins_per_day: int = parameter(4, "sign-ins per user per day", 1, 24)
    max_replay_delay_seconds: int = parameter(
        120,
        "longest wait of the attacker after the user's submission, in seconds "
        "(uniform from 0)",
        0,
        240,
    )
    typing_delay_seconds: float = parameter(
        8.0,
        "mean time from reading a code to submitting it, in seconds "
        "(gamma with shape 4, rounded, 1 to 29 s)",
        1,
        20,
    )
    window: int = parameter(
        1, "time steps accepted on either side of the server's", 1, admin.MAX_WINDOW
    )


@dataclass(frozen=True)
class Trial:
    user: str
    number: int
    case: str
    moment: int  # Unix second at which the user reads the code
    typing_delay: int  # seconds from reading to the user's submission
    replay_delay: int  # seconds from the user's submission to the attacker's ('after')
    relay_delay: int  # seconds from reading to the attacker's submission ('before')


def make_trials(parameters: Parameters, seed: int, start: int) -> list[list[Trial]]:
    """Draw every user's trials from the seed: one list per user, in time order."""
    rng = np.random.default_rng(seed)
    per_day = parameters.sign_ins_per_day
    count = parameters.days * per_day
    slot = SECONDS_PER_DAY // per_day
    usable = slot - SLOT_MARGIN_SECONDS

    plans = []
    number = 0
    for index in range(parameters.users):
        cases = rng.integers(0, len(CASES), count)
        offsets = rng.integers(0, usable, count)
        mean = parameters.typing_delay_seconds
        typing = rng.gamma(TYPING_DELAY_SHAPE, mean / TYPING_DELAY_SHAPE, count)
        typing = np.clip(np.rint(typing), 1, MAX_TYPING_DELAY_SECONDS).astype(int)
        replay = rng.integers(0, parameters.max_replay_delay_seconds + 1, count)
        relay_share = rng.random(count)

        trials = []
        for attempt in range(count):
            slot_start = start + attempt // per_day * SECONDS_PER_DAY
            slot_start += attempt % per_day * slot
            trials.append(
                Trial(
                    user=user_name(index),
                    number=number,
                    case=CASES[cases[attempt]],
                    moment=int(slot_start + offsets[attempt]),
                    typing_delay=int(typing[attempt]),
                    replay_delay=int(replay[attempt]),
                    relay_delay=int(relay_share[attempt] * typing[attempt]),
                )
            )
            number += 1
        plans.append(trials)
    return plans


def user_name(index: int) -> str:
    return f"u{index:04d}"


class ReplayRun:
    """Two app instances on one SQLite file, the driver, and the recorded submissions."""

    def __init__(self, folder: Path, parameters: Parameters) -> None:
        self.clock = ManualClock(SANDBOX_START)
        url = f"sqlite:///{folder / 'replay.sqlite3'}"
        key = Fernet.generate_key()
        self.instance_a = open_context(url, self.clock, key=key, fast_hashing=True)
        self.instance_b = open_context(url, self.clock, key=key, fast_hashing=True)
        self.scheduler = Scheduler(self.clock)
        self.checker = InvariantChecker(self.clock, lambda: self.scheduler.actions)
        self.rows: list[dict] = []

        admin.create_portal(self.instance_a, PORTAL, PORTAL_NAME)
        admin.add_user(self.instance_a, PORTAL, OWNER, OWNER_PASSWORD, "master-admin")
        self.driver = PortalDriver(self.instance_a, PORTAL, self.checker)
        self.driver.know_user(OWNER, OWNER_PASSWORD, UserKind.INTERNAL)
        admin.set_window(
            self.instance_a, self.driver.owner_session(), PORTAL, parameters.window
        )

    def close(self) -> None:
        self.instance_a.close()
        self.instance_b.close()

    def record(
        self, trial: Trial, submission: str, outcome: str, accepted: int
    ) -> None:
        self.rows.append(
            {
                "trial": trial.number,
                "user": trial.user,
                "case": trial.case,
                "time_seconds": self.clock.now() - SANDBOX_START,
                "typing_delay_seconds": trial.typing_delay,
                "replay_delay_seconds": replay_delay(trial),
                "submission": submission,
                "is_replay": submission in REPLAY_SUBMISSIONS[trial.case],
                "outcome": outcome,
                "accepted": accepted,
            }
        )


# Submissions of each case that reuse a code submitted before.
REPLAY_SUBMISSIONS = {
    "after": {"attacker"},
    "before": {"user"},
    "race": {"both instances"},
}


def replay_delay(trial: Trial) -> int:
    """Return the seconds between the code's first submission and its reuse."""
    if trial.case == "after":
        return trial.replay_delay
    if trial.case == "before":
        return trial.typing_delay - trial.relay_delay
    return 0


def outcome_of(result: SignInResult) -> str:
    if result.status == Status.SIGNED_IN:
        return "accepted"
    return str(result.reason or result.status)


def simulate(
    parameters: Parameters, seed: int, on_progress: ProgressCallback | None = None
) -> Result:
    with tempfile.TemporaryDirectory(prefix="twofa-replay-") as folder:
        run = ReplayRun(Path(folder), parameters)
        try:
            plans = run_trials(run, parameters, seed, on_progress)
        finally:
            run.close()

    events = pd.DataFrame(run.rows).sort_values(
        ["time_seconds", "trial", "submission"], kind="stable", ignore_index=True
    )
    summary = case_summary(events)
    report = {
        "scenario": "replay",
        "seed": seed,
        "parameters": as_dict(parameters),
        "trials": sum(len(trials) for trials in plans),
        "replays_submitted": int(summary["replays"].sum()),
        "replays_accepted": int(summary["replays_accepted"].sum()),
        "expected_replays_accepted": 0,
        "acceptances_by_case": {
            case: int(events.loc[events["case"] == case, "accepted"].sum())
            for case in CASES
        },
        "invariant_checks": run.checker.checks,
        "note": (
            "In case 'before' the attacker's first use of the code is accepted: "
            "TOTP cannot stop a code relayed before the user submits it."
        ),
    }
    return Result(events, summary, report)


def run_trials(
    run: ReplayRun,
    parameters: Parameters,
    seed: int,
    on_progress: ProgressCallback | None,
) -> list[list[Trial]]:
    """Enroll the users on instance A, then run every user's trials in time order."""
    names = [user_name(index) for index in range(parameters.users)]
    run.driver.add_users([(name, USER_PASSWORD, "standard") for name in names])
    run.driver.set_switch(True)
    for name in names:
        result = run.driver.sign_in(name)
        if result.status != Status.SIGNED_IN:
            raise SimulationError(f"enrollment of {name} failed: {result.reason}")

    start = SANDBOX_START + SLOT_MARGIN_SECONDS
    plans = make_trials(parameters, seed, start)
    progress = Progress(on_progress, sum(len(trials) for trials in plans))
    for trials in plans:
        run.scheduler.start(user_actor(run, trials, progress), at=trials[0].moment)
    run.scheduler.run()
    progress.finish()
    return plans


def user_actor(run: ReplayRun, trials: list[Trial], progress: Progress):
    """Run one user's trials, with the attacker acting as each trial's case requires."""
    for trial in trials:
        yield trial.moment - run.clock.now()
        if trial.case == "after":
            yield from attacker_after(run, trial)
        elif trial.case == "before":
            yield from attacker_before(run, trial)
        else:
            yield from instances_race(run, trial)
        progress.advance()


def password_step(run: ReplayRun, user: str, ctx: Context) -> str:
    """Pass the password step on one instance and return the challenge for the code."""
    result = run.driver.submit_password(user, ctx)
    if result.status != Status.CODE_REQUIRED:
        raise SimulationError(
            f"password step of {user} gave {result.status} ({result.reason}), "
            "expected code_required"
        )
    return result.challenge


def attacker_after(run: ReplayRun, trial: Trial):
    driver = run.driver
    user_challenge = password_step(run, trial.user, run.instance_a)
    code, _ = driver.phones[trial.user].code(run.clock.now())
    yield trial.typing_delay
    result = driver.submit_code(trial.user, user_challenge, code, run.instance_a)
    run.record(
        trial, "user", outcome_of(result), int(result.status == Status.SIGNED_IN)
    )

    yield trial.replay_delay
    attacker_challenge = password_step(run, trial.user, run.instance_b)
    result = driver.submit_code(trial.user, attacker_challenge, code, run.instance_b)
    run.record(
        trial, "attacker", outcome_of(result), int(result.status == Status.SIGNED_IN)
    )


def attacker_before(run: ReplayRun, trial: Trial):
    driver = run.driver
    user_challenge = password_step(run, trial.user, run.instance_a)
    code, step = driver.phones[trial.user].code(run.clock.now())
    yield trial.relay_delay
    attacker_challenge = password_step(run, trial.user, run.instance_b)
    result = driver.submit_code(trial.user, attacker_challenge, code, run.instance_b)
    run.record(
        trial, "attacker", outcome_of(result), int(result.status == Status.SIGNED_IN)
    )

    yield trial.typing_delay - trial.relay_delay
    result = driver.submit_code(trial.user, user_challenge, code, run.instance_a)
    run.record(
        trial, "user", outcome_of(result), int(result.status == Status.SIGNED_IN)
    )
    if result.status == Status.SIGNED_IN:
        return

    # The user waits for the next code and signs in with it on the same challenge.
    yield max((step + 1) * PERIOD - run.clock.now(), 0)
    code, _ = driver.phones[trial.user].code(run.clock.now())
    yield trial.typing_delay
    result = driver.submit_code(trial.user, user_challenge, code, run.instance_a)
    run.record(
        trial, "user retry", outcome_of(result), int(result.status == Status.SIGNED_IN)
    )


def instances_race(run: ReplayRun, trial: Trial):
    """Check one code on both instances at the same moment, in two threads."""
    challenge_a = password_step(run, trial.user, run.instance_a)
    challenge_b = password_step(run, trial.user, run.instance_b)
    code, _ = run.driver.phones[trial.user].code(run.clock.now())
    yield trial.typing_delay

    pairs = [(run.instance_a, challenge_a), (run.instance_b, challenge_b)]
    results = race(pairs, code)
    accepted = 0
    for (ctx, _), result in zip(pairs, results, strict=True):
        if result.status == Status.SIGNED_IN:
            accepted += 1
            run.driver.record_acceptance(trial.user, ctx)
            run.checker.session_opened(
                ctx, trial.user, UserKind.INTERNAL, True, result.session
            )
    # Which instance wins is up to the threads, so the row records counts only.
    outcomes = sorted(outcome_of(result) for result in results)
    run.record(trial, "both instances", " + ".join(outcomes), accepted)


def race(pairs: list[tuple[Context, str]], code: str) -> list[SignInResult]:
    """Submit ``code`` on every (instance, challenge) at once and return the results in order."""
    barrier = threading.Barrier(len(pairs))
    results: list[SignInResult | None] = [None] * len(pairs)
    errors: list[BaseException] = []

    def submit(index: int) -> None:
        ctx, challenge = pairs[index]
        try:
            barrier.wait(timeout=RACE_TIMEOUT_SECONDS)
            results[index] = submit_code(ctx, challenge, code)
        except BaseException as error:  # re-raised below in the simulation's thread
            errors.append(error)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RACE_TIMEOUT_SECONDS)
    if errors:
        raise SimulationError(f"a racing code check failed: {errors[0]!r}") from errors[
            0
        ]
    if any(result is None for result in results):
        raise SimulationError(
            f"a racing code check did not finish within {RACE_TIMEOUT_SECONDS} s"
        )
    return results


def case_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Acceptances and replays per case and replay delay bucket."""
    frame = events.copy()
    low = frame["replay_delay_seconds"] // DELAY_BUCKET_SECONDS * DELAY_BUCKET_SECONDS
    frame["replay_delay_bucket"] = [
        f"{a} to {a + DELAY_BUCKET_SECONDS - 1} s" for a in low
    ]
    frame["bucket_order"] = low

    first_use = ~frame["is_replay"] & (frame["submission"] != "user retry")
    frame["first_use_accepted"] = np.where(first_use, frame["accepted"], 0)
    # A race row stands for two submissions, the first use and one replay.
    race_row = frame["submission"] == "both instances"
    frame["first_use_accepted"] = np.where(
        race_row, np.minimum(frame["accepted"], 1), frame["first_use_accepted"]
    )
    frame["replays"] = frame["is_replay"].astype(int)
    frame["replays_accepted"] = np.where(
        race_row,
        np.maximum(frame["accepted"] - 1, 0),
        np.where(frame["is_replay"], frame["accepted"], 0),
    )
    frame["replays_rejected_as_replay"] = (
        frame["is_replay"] & frame["outcome"].str.contains("replay")
    ).astype(int)
    frame["replays_rejected_as_wrong_code"] = (
        frame["is_replay"] & frame["outcome"].str.contains("wrong_code")
    ).astype(int)
    frame["user_retry_accepted"] = np.where(
        frame["submission"] == "user retry", frame["accepted"], 0
    )

    summary = (
        frame.groupby(["case", "bucket_order", "replay_delay_bucket"])
        .agg(
            trials=("trial", "nunique"),
            first_use_accepted=("first_use_accepted", "sum"),
            replays=("replays", "sum"),
            replays_accepted=("replays_accepted", "sum"),
            replays_rejected_as_replay=("replays_rejected_as_replay", "sum"),
            replays_rejected_as_wrong_code=("replays_rejected_as_wrong_code", "sum"),
            user_retry_accepted=("user_retry_accepted", "sum"),
        )
        .reset_index()
        .drop(columns=["bucket_order"])
    )
    return summary


def charts(result: Result) -> list[alt.Chart]:
    """Build the report's chart: what happened to the replays, by case and delay."""
    summary = result.summary
    long = summary.melt(
        id_vars=["case", "replay_delay_bucket"],
        value_vars=[
            "replays_accepted",
            "replays_rejected_as_replay",
            "replays_rejected_as_wrong_code",
        ],
        var_name="outcome",
        value_name="count",
    )
    long["outcome"] = long["outcome"].str.replace("replays_", "").str.replace("_", " ")
    order = list(dict.fromkeys(summary["replay_delay_bucket"]))
    bars = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("replay_delay_bucket:N", sort=order, title="replay delay"),
            y=alt.Y("count:Q", title="replayed codes"),
            color=alt.Color("outcome:N", title="outcome of the replay"),
            column=alt.Column("case:N", title="case"),
            tooltip=["case", "replay_delay_bucket", "outcome", "count"],
        )
        .properties(title="Replayed codes by case (accepted must be 0)", width=220)
    )
    return [bars]
