"""The simulator's scenarios with small parameters, the closed forms and repeatability."""

from __future__ import annotations

import numpy as np
import pytest

import simulations
from core import signin
from core.clock import ManualClock
from core.signin import SignInResult, Status
from core.verification import Rejection, Verdict
from simulations import analytic, brute_force, drift, invariants
from simulations.errors import InvalidParameter, InvariantViolation
from simulations.invariants import InvariantChecker
from simulations.report import csv_bytes, table_files

SMALL = {
    "drift": {"users": 6, "days": 1},
    "replay": {"users": 3, "days": 1, "sign_ins_per_day": 4},
    "switch": {
        "users": 5,
        "customers": 2,
        "days": 4,
        "switch_off_day": 1,
        "switch_on_again_day": 2,
        "resets_per_day": 2.0,
    },
    "brute-force": {"days": 2, "trials": 2_000, "validation_hours": 2},
}


def run_small(scenario: str, seed: int = 7) -> simulations.Result:
    return simulations.run(scenario, seed=seed, **SMALL[scenario])


def csv_files(result: simulations.Result) -> dict[str, bytes]:
    return {name: csv_bytes(table) for name, table in table_files(result).items()}


def test_drift_rates_by_window():
    result = run_small("drift")

    rates = {
        (row["window"], row["drift_tracking"]): row["acceptance_rate"]
        for row in result.report["acceptance"]
    }
    assert len(rates) == 6
    assert rates[(0, False)] <= rates[(1, False)] <= rates[(2, False)]
    assert result.report["model_validation"]["validated_attempts"] > 0
    assert set(result.events["path"]) == {"core"}
    assert len(result.events) == 6 * 6 * 2
    assert result.report["invariant_checks"] > 0


def test_drift_model_stands_in_beyond_core_users():
    result = simulations.run("drift", seed=3, users=8, days=1, core_users=3)

    paths = result.events.groupby("path", observed=True)["user"].nunique()
    assert paths["core"] == 3
    assert paths["model"] == 5
    assert result.report["model_validation"]["core_users"] == 3


def test_drift_agrees_with_closed_form():
    result = simulations.run(
        "drift", seed=11, users=40, days=3, offset_sd_seconds=30.0, drift_sd_ppm=0.0
    )

    untracked = result.events[~result.events["drift_tracking"]]
    for window, attempts in untracked.groupby("window"):
        p = attempts["p_accept_without_tracking"].to_numpy()
        observed = attempts["accepted"].sum()
        expected = p.sum()
        spread = np.sqrt((p * (1 - p)).sum())
        assert abs(observed - expected) <= 4 * max(spread, 1e-9), (
            f"window {window}: {observed} accepted, closed form {expected:.1f} "
            f"± {spread:.1f}"
        )
    check = result.report["closed_form_check"]
    assert check["agrees"], check


def test_closed_form_matches_phase_count():
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 60, 500)
    delays = rng.integers(0, 121, 500)
    for window in range(4):
        fast = analytic.acceptance_probabilities(offsets, delays, window)
        slow = [
            analytic.acceptance_probability(offset, delay, window)
            for offset, delay in zip(offsets, delays, strict=True)
        ]
        assert np.allclose(fast, slow), f"window {window}"


def test_closed_form_known_values():
    assert analytic.acceptance_probability(0, 0, 0) == 1.0
    assert analytic.acceptance_probability(0, 8, 0) == pytest.approx(22 / 30)
    assert analytic.acceptance_probability(0, 8, 1) == 1.0
    assert analytic.acceptance_probability(-50, 0, 1) == pytest.approx(10 / 30)
    assert analytic.acceptance_probability(-70, 0, 1) == 0.0
    assert analytic.acceptance_probability(200, 0, 2) == 0.0


def test_replay_accepts_no_replay():
    result = run_small("replay")

    assert result.report["replays_accepted"] == 0
    assert result.report["replays_submitted"] == result.report["trials"]
    races = result.events[result.events["case"] == "race"]
    assert (races["accepted"] == 1).all(), races
    relayed = result.events[
        (result.events["case"] == "before") & (result.events["submission"] == "user")
    ]
    assert (relayed["outcome"] == "replay").all(), relayed


def test_replay_stops_on_broken_guard(monkeypatch):
    real_verify = signin.verify_code

    def accept_replays(connection, check, raw_code, now, fields, activate=False):
        verdict = real_verify(connection, check, raw_code, now, fields, activate)
        if verdict.rejection == Rejection.REPLAY:
            return Verdict(True, step=check.last_step, drift=check.drift)
        return verdict

    monkeypatch.setattr(signin, "verify_code", accept_replays)
    with pytest.raises(InvariantViolation) as caught:
        run_small("replay")

    assert caught.value.invariant == invariants.STEP_ONCE
    assert caught.value.user.startswith("u")
    assert caught.value.step > 0


def test_switch_tracks_enrollment_and_customers():
    result = run_small("switch")
    summary = result.summary

    off = summary[~summary["switch_on"]]
    assert (off["users_needing_enrollment"] == 0).all()
    assert summary["older_entry_codes_accepted"].max() == 0
    assert summary["customer_sign_ins_refused"].max() == 0
    assert summary["customer_sign_ins"].iloc[-1] == 2 * 4 * 2
    assert result.report["other_portal_unchanged"]
    on_again = summary[summary["hours"] == 2 * 24 + 12]
    assert on_again["users_needing_enrollment"].iloc[0] == 6  # 5 users and the owner


def test_brute_force_matches_bound():
    result = run_small("brute-force")
    summary = result.summary

    assert (summary["success_exact"] <= summary["success_bound"] + 1e-12).all()
    assert result.report["model_validation"]["identical"]
    core = summary[(summary["throttle"] == "core") & (summary["window"] == 1)]
    assert core["candidate_steps"].iloc[0] == 3
    assert core["guesses"].is_monotonic_increasing
    none = summary[(summary["throttle"] == "none") & (summary["hours"] == 48)]
    assert (none["guesses"] == 2 * 86_400 // 2).all()


def test_brute_force_lock_schedule_is_core():
    brute_force.validate_lock_schedule()
    assert brute_force.CORE_THROTTLE.lock_seconds(5) == 30
    assert brute_force.CORE_THROTTLE.lock_seconds(40) == 900


@pytest.mark.parametrize("scenario", list(simulations.SCENARIOS))
def test_same_seed_same_files(scenario):
    first = csv_files(run_small(scenario, seed=21))
    second = csv_files(run_small(scenario, seed=21))
    other = csv_files(run_small(scenario, seed=22))

    assert first == second
    assert first != other


def test_unknown_parameter_rejected():
    with pytest.raises(InvalidParameter, match="trials"):
        simulations.run("drift", seed=1, trials=5)


def test_parameter_range_rejected():
    with pytest.raises(InvalidParameter, match="users must be at least 1"):
        simulations.run("drift", seed=1, users=0)


def test_unknown_scenario_rejected():
    with pytest.raises(InvalidParameter, match="unknown"):
        simulations.run("weather", seed=1)


def test_switch_days_in_order():
    with pytest.raises(InvalidParameter, match="switch_on_again_day"):
        simulations.run("switch", seed=1, switch_off_day=3, switch_on_again_day=2)


def make_checker() -> InvariantChecker:
    clock = ManualClock(1_800_000_000)
    return InvariantChecker(clock, lambda: 42)


def test_checker_reports_repeated_step():
    checker = make_checker()
    checker.step_accepted("alex", 1, 60_000_000)

    with pytest.raises(InvariantViolation) as caught:
        checker.step_accepted("alex", 1, 60_000_000)

    error = caught.value
    assert error.invariant == invariants.STEP_ONCE
    assert error.step == 42
    assert error.user == "alex"
    assert error.values["accepted_step"] == 60_000_000
    assert "60000000" in str(error)


def test_checker_allows_new_enrollment_history():
    checker = make_checker()
    checker.step_accepted("alex", 1, 60_000_000)
    checker.step_accepted("alex", 2, 60_000_000)


def test_checker_rejects_password_only_while_on():
    checker = make_checker()
    signed_in = SignInResult(Status.SIGNED_IN, "Signed in.", session="token")

    with pytest.raises(InvariantViolation, match="code required"):
        checker.password_step("alex", "internal", True, signed_in)
    checker.password_step("alex", "internal", False, signed_in)


def test_checker_rejects_code_for_customer():
    checker = make_checker()
    asked = SignInResult(Status.CODE_REQUIRED, "Enter the code.", challenge="c")

    with pytest.raises(InvariantViolation, match="customers never asked"):
        checker.password_step("casey", "customer", False, asked)


def test_checker_rejects_reset_of_others():
    checker = make_checker()
    before = {"alex": ((1, "active"),), "blair": ((2, "active"),)}
    after = {"alex": ((1, "revoked"),), "blair": ((2, "revoked"),)}

    with pytest.raises(InvariantViolation) as caught:
        checker.reset_done("alex", before, after)
    assert caught.value.values["other_users_changed"] == ["blair"]


def test_drift_plan_phase_is_uniform():
    plan = drift.make_plan(drift.Parameters(users=200, days=5), seed=2)

    phases = (plan.moments % 30).ravel()
    counts = np.bincount(phases, minlength=30)
    assert counts.min() > 0.6 * counts.mean()
    assert (np.diff(plan.moments, axis=1) > 900 + 120).all()
