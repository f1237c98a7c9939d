"""Session state of the dashboard: every key, its default, and the moves between screens.

Streamlit keeps ``st.session_state`` per browser session, so a page reload
starts a new session at the sign-in form, without the challenge or the
session token.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import streamlit as st


class Step(enum.StrEnum):
    """The screen of the sign-in flow that a signed-out visitor is on."""

    PASSWORD = "password"
    ENROLLMENT = "enrollment"
    CODE = "code"


@dataclass(frozen=True)
class Notice:
    """A message kept for the next screen, for example why the visitor is back at the form."""

    level: Literal["error", "info"]
    text: str


STEP = "sign_in_step"
CHALLENGE = "challenge"  # token from submit_password for the enrollment or code step
SESSION = "session"  # session token, set once signed in
USER = "user"  # SignedInUser of SESSION, refreshed by app.py on every run
NOTICE = "notice"
PORTAL = "portal"  # the portal slug last submitted, to prefill the form

DEFAULTS = {
    STEP: Step.PASSWORD,
    CHALLENGE: None,
    SESSION: None,
    USER: None,
    NOTICE: None,
    PORTAL: "",
}


def init_state() -> None:
    """Set every missing key to its default. Call this at the top of each run."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def open_challenge(step: Step, challenge: str) -> None:
    st.session_state[STEP] = step
    st.session_state[CHALLENGE] = challenge


def back_to_password_form(notice: Notice | None = None) -> None:
    """Drop the challenge, so that the next run shows the sign-in form."""
    st.session_state[STEP] = Step.PASSWORD
    st.session_state[CHALLENGE] = None
    st.session_state[NOTICE] = notice


def finish_sign_in(session_token: str) -> None:
    back_to_password_form()
    st.session_state[SESSION] = session_token


def forget_session(notice: Notice | None = None) -> None:
    """Drop the session token and user, so that the next run shows the sign-in form."""
    back_to_password_form(notice)
    st.session_state[SESSION] = None
    st.session_state[USER] = None


def show_notice() -> None:
    """Show the kept notice once, then drop it."""
    notice = st.session_state[NOTICE]
    st.session_state[NOTICE] = None
    if notice is None:
        return
    if notice.level == "error":
        st.error(notice.text)
    else:
        st.info(notice.text)
