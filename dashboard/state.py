"""Session state of the dashboard: the keys that several screens share, their
defaults, and the moves between screens.

Streamlit keeps ``st.session_state`` per browser session, so a page reload
starts a new session at the sign-in form, without the challenge or the
session tokens. A screen sets the defaults of its own keys at its top with
``init_state``.
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

    level: Literal["error", "info", "success"]
    text: str


STEP = "sign_in_step"
CHALLENGE = "challenge"  # token from submit_password for the enrollment or code step
SESSION = "session"  # session token, set once signed in
USER = "user"  # SignedInUser of SESSION, refreshed by app.py on every run
NOTICE = "notice"
PORTAL = "portal"  # the portal slug last submitted, to prefill the form
# A support operator is not a portal user, so their session is kept apart from
# SESSION, and both can be signed in at once in one browser session.
OPERATOR_SESSION = "operator_session"
OPERATOR = "operator"  # SignedInOperator of OPERATOR_SESSION, refreshed by app.py

DEFAULTS = {
    STEP: Step.PASSWORD,
    CHALLENGE: None,
    SESSION: None,
    USER: None,
    NOTICE: None,
    PORTAL: "",
    OPERATOR_SESSION: None,
    OPERATOR: None,
}


def init_state(defaults: dict[str, object] = DEFAULTS) -> None:
    """Set every missing key of ``defaults`` to its default value.

    app.py calls this with the shared keys at the top of each run.
    """
    for key, value in defaults.items():
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


def finish_operator_sign_in(session_token: str) -> None:
    st.session_state[OPERATOR_SESSION] = session_token


def forget_operator(notice: Notice | None = None) -> None:
    """Drop the operator's session token, so that the next run hides the support pages."""
    st.session_state[OPERATOR_SESSION] = None
    st.session_state[OPERATOR] = None
    st.session_state[NOTICE] = notice


def keep_notice(level: Literal["error", "info", "success"], text: str) -> None:
    """Keep a message for the next run of the current page, for example after st.rerun."""
    st.session_state[NOTICE] = Notice(level, text)


def show_notice() -> None:
    """Show the kept notice once, then drop it."""
    notice = st.session_state[NOTICE]
    st.session_state[NOTICE] = None
    if notice is None:
        return
    if notice.level == "error":
        st.error(notice.text)
    elif notice.level == "success":
        st.success(notice.text)
    else:
        st.info(notice.text)
