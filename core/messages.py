"""The text shown to people for each sign-in outcome, produced in one place."""

from __future__ import annotations

import datetime

from core.codes import FormatProblem
from core.verification import LOCK_AFTER_FAILURES


def format_time(unix_seconds: int) -> str:
    """Format Unix seconds as UTC, for example ``2026-12-04 15:30:00 UTC``."""
    moment = datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_wait(seconds: int) -> str:
    seconds = max(0, seconds)
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return f"{minutes} min {rest} s"
    if minutes:
        return f"{minutes} min"
    return f"{rest} s"


FORMAT_PROBLEMS = {
    FormatProblem.NOT_TEXT: "The code must be typed as text.",
    FormatProblem.EMPTY: "Enter the code that your authenticator app shows.",
    FormatProblem.TOO_LONG_INPUT: "That is far too long for a code.",
    FormatProblem.NOT_DIGITS: "The code may contain only the digits 0-9, with at most one "
    "space or dash inside.",
    FormatProblem.WRONG_LENGTH: "The code must have exactly {digits} digits, leading zeros "
    "included.",
}


def describe(
    reason: str | None,
    *,
    now: int,
    locked_until: int = 0,
    failures: int = 0,
    format_problem: FormatProblem | None = None,
    digits: int = 6,
) -> str:
    """Return the sentence that explains ``reason`` (a Reason value) to the person signing in."""
    if reason == "invalid_credentials":
        return "The portal, username or password is not correct."
    if reason == "account_disabled":
        return "This account is disabled. Ask a Master Admin of your portal."
    if reason == "locked":
        return (
            f"Too many wrong codes. Code entry is locked for {format_wait(locked_until - now)}, "
            f"until {format_time(locked_until)}."
        )
    if reason == "bad_format" and format_problem is not None:
        return FORMAT_PROBLEMS[format_problem].format(digits=digits) + _failures_note(
            failures
        )
    if reason == "wrong_code":
        return (
            "That code is not correct. Check the code for this portal in your app."
            + (_failures_note(failures))
        )
    if reason == "replay":
        return (
            "That code was already used. Wait for the next code in your app."
            + _failures_note(failures)
        )
    if reason == "sign_in_expired":
        return "This sign-in has expired or was already completed. Sign in again."
    if reason == "enrollment_expired":
        return "The QR code expired before it was confirmed. Sign in again to get a new one."
    if reason == "enrollment_changed":
        return (
            "Your two-factor enrollment was reset or revoked meanwhile. Sign in again."
        )
    return "Sign-in failed. Try again."


def _failures_note(failures: int) -> str:
    if failures <= 0:
        return ""
    return (
        f" ({failures} wrong in a row; code entry locks after {LOCK_AFTER_FAILURES}.)"
    )
