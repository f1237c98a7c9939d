"""Closed-form results that the scenarios compare their simulated rates with.

Times are in seconds and the clock ticks in whole seconds, as the core's does.
"""

from __future__ import annotations

import math

import numpy as np

from core import totp
from core.verification import candidate_offsets

PERIOD = totp.DEFAULT_PERIOD
DIGITS = totp.DEFAULT_DIGITS


def acceptance_probability(
    offset_seconds: float,
    delay_seconds: int,
    window: int,
    period: int = PERIOD,
) -> float:
    """Return P(accept) of a code for a sign-in at a uniformly random second of the time step.

    The user reads the code at server time t on a phone whose clock is
    ``offset_seconds`` ahead, and the server checks it ``delay_seconds`` later,
    with drift tracking off. The code is accepted when
    floor((t + offset) / period) - floor((t + delay) / period) lies within
    ±window. The probability is the share of the ``period`` whole seconds t
    of a time step for which that holds, which is exact when the sign-in
    second is uniform over a whole number of periods.
    """
    phases = np.arange(period)
    difference = np.floor((phases + offset_seconds) / period) - np.floor(
        (phases + delay_seconds) / period
    )
    return float(np.mean(np.abs(difference) <= window))


def acceptance_probabilities(
    offsets_seconds: np.ndarray,
    delays_seconds: np.ndarray,
    window: int,
    period: int = PERIOD,
) -> np.ndarray:
    """Compute acceptance_probability for many (offset, whole-second delay) pairs at once.

    With u = (t + delay) mod period, which is uniform when t is, the step
    difference is floor((u + offset - delay) / period). It lies within
    ±window exactly when u is in [-period·window - x, period·(window + 1) - x)
    for x = offset - delay, so the probability is the count of whole seconds u
    in that interval and in [0, period), divided by period.
    """
    x = np.asarray(offsets_seconds, dtype=float) - np.asarray(
        delays_seconds, dtype=float
    )
    lowest = np.maximum(np.ceil(-period * window - x), 0)
    highest = np.minimum(np.ceil(period * (window + 1) - x) - 1, period - 1)
    return np.clip(highest - lowest + 1, 0, period) / period


def accepted_codes_per_guess(window: int, drift_steps: int) -> int:
    """Return how many time steps a guess is checked against: the core's candidate steps."""
    return len(candidate_offsets(window, drift_steps))


def guess_success_probability(candidate_steps: int, digits: int = DIGITS) -> float:
    """Return P(one random guess equals one of ``candidate_steps`` independent random codes)."""
    return 1.0 - (1.0 - 10.0**-digits) ** candidate_steps


def success_bound(
    guesses: int | np.ndarray, candidate_steps: int, digits: int = DIGITS
):
    """Return the union bound guesses × candidate steps / 10^digits, capped at 1."""
    return np.minimum(np.asarray(guesses) * candidate_steps / 10.0**digits, 1.0)


def success_exact(
    guesses: int | np.ndarray, candidate_steps: int, digits: int = DIGITS
):
    """Return 1 - (1 - q)^guesses with q the success probability of one guess."""
    per_guess = guess_success_probability(candidate_steps, digits)
    return -np.expm1(np.asarray(guesses) * math.log1p(-per_guess))


def binomial_standard_error(probability: float | np.ndarray, trials: int | np.ndarray):
    """Return sqrt(p(1 - p) / n), the standard error of a binomial rate."""
    trials = np.maximum(np.asarray(trials, dtype=float), 1.0)
    probability = np.asarray(probability, dtype=float)
    return np.sqrt(probability * (1.0 - probability) / trials)
