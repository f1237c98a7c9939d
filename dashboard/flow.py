"""The flow explorer's moves on its sandbox, one sandbox per browser session.

Each move calls the core on the sandbox portal and keeps a state.Notice
that describes the outcome, for the next run of the page. The sandbox has its
own in-memory database and clock, so no move touches real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import streamlit as st
from sqlmodel import Session

from core import admin, audit, signin
from core.admin import UserState
from core.errors import InvalidValue, NotSignedIn, PermissionDenied
from core.models import AuditEvent
from core.sandbox import SANDBOX_PORTAL, Sandbox
from core.signin import SignedInUser, SignInResult, Status
from dashboard.format import as_sentence, describe_switch
from dashboard.state import Notice

SANDBOX = "flow_sandbox"
CHALLENGE = (
    "flow_challenge"  # the Challenge of the sandbox sign-in that waits for a code
)
SESSIONS = "flow_sessions"  # sandbox session token by username
LAST_ACCEPTED = "flow_last_accepted"  # (username, code) of the last accepted code
OUTCOME = "flow_outcome"  # Notice of the last move

OWNER = "owner"
RESET_REASON = "flow explorer"
AUDIT_ROWS = 50


@dataclass(frozen=True)
class Challenge:
    """A sandbox sign-in that passed the password and waits for a code."""

    username: str
    token: str
    enrolling: bool


def current_sandbox() -> Sandbox:
    """Return the sandbox of this browser session, creating it on first use."""
    if st.session_state.get(SANDBOX) is None:
        start_over()
    return st.session_state[SANDBOX]


def start_over() -> None:
    """Replace the sandbox with a new one and forget every sign-in and outcome."""
    old = st.session_state.get(SANDBOX)
    if old is not None:
        old.close()
    st.session_state[SANDBOX] = Sandbox.create()
    st.session_state[CHALLENGE] = None
    st.session_state[SESSIONS] = {}
    st.session_state[LAST_ACCEPTED] = None
    st.session_state[OUTCOME] = None


def tell(level: Literal["error", "info", "success"], text: str) -> None:
    st.session_state[OUTCOME] = Notice(level, text)


def signed_in_users(sandbox: Sandbox) -> dict[str, SignedInUser]:
    """Return the sandbox users whose session is still live, dropping ended sessions.

    A reset or the switch can end a session, so each one is checked on every run.
    """
    live = {}
    for username, token in list(st.session_state[SESSIONS].items()):
        try:
            live[username] = signin.current_user(sandbox.ctx, token)
        except NotSignedIn:
            del st.session_state[SESSIONS][username]
    return live


def submit_password(sandbox: Sandbox, username: str) -> None:
    result = sandbox.sign_in(username)
    st.session_state[CHALLENGE] = None
    if result.status in (Status.ENROLLMENT_REQUIRED, Status.CODE_REQUIRED):
        enrolling = result.status == Status.ENROLLMENT_REQUIRED
        st.session_state[CHALLENGE] = Challenge(username, result.challenge, enrolling)
        tell("info", f"Password accepted for {username}. {result.message}")
        return
    record_sign_in(username, result, code=None)


def submit_code(sandbox: Sandbox, challenge: Challenge, code: str) -> None:
    """Send a code for the open challenge, as typed or as the virtual phone shows it."""
    result = signin.submit_code(sandbox.ctx, challenge.token, code)
    if result.status != Status.SIGNED_IN and result.challenge is not None:
        tell("error", f"Code {code.strip()!r} rejected: {result.message}")
        return
    st.session_state[CHALLENGE] = None
    record_sign_in(challenge.username, result, code=code)


def record_sign_in(username: str, result: SignInResult, code: str | None) -> None:
    if result.status != Status.SIGNED_IN:
        tell("error", result.message)
        return
    st.session_state[SESSIONS][username] = result.session
    if code is None:
        tell("success", f"{username} is signed in with the password only.")
        return
    st.session_state[LAST_ACCEPTED] = (username, code)
    tell("success", f"{username} is signed in with password and code {code}.")


def try_replay(sandbox: Sandbox) -> None:
    """Sign the user of the last accepted code in again and submit that code once more."""
    username, code = st.session_state[LAST_ACCEPTED]
    first = sandbox.sign_in(username)
    if first.status != Status.CODE_REQUIRED:
        tell(
            "info",
            f"No replay was tried: the password step for {username} did not ask for "
            f"a code. {first.message}",
        )
        return

    result = signin.submit_code(sandbox.ctx, first.challenge, code)
    if result.status == Status.SIGNED_IN:
        st.session_state[SESSIONS][username] = result.session
        tell("error", f"The replayed code {code} of {username} was accepted.")
    else:
        tell(
            "info",
            f"The replayed code {code} of {username} was rejected: {result.message}",
        )


def owner_session() -> str | None:
    return st.session_state[SESSIONS].get(OWNER)


def set_switch(sandbox: Sandbox, enabled: bool) -> None:
    try:
        result = admin.set_two_factor(
            sandbox.ctx, owner_session(), SANDBOX_PORTAL, enabled
        )
    except PermissionDenied as error:
        tell("error", as_sentence(str(error)))
        return
    tell("success", describe_switch(result))


def reset_user(sandbox: Sandbox, username: str) -> None:
    try:
        result = admin.reset_enrollment(
            sandbox.ctx, owner_session(), SANDBOX_PORTAL, username, RESET_REASON
        )
    except (InvalidValue, PermissionDenied) as error:
        tell("error", as_sentence(str(error)))
        return
    tell(
        "success",
        f"The owner reset the enrollment of {result.target} ({result.revoked} revoked). "
        f"{result.target} enrolls again at the next sign-in.",
    )


def sandbox_users(sandbox: Sandbox) -> list[UserState]:
    """Return the sandbox users with their enrollment state, read from the sandbox database."""
    with Session(sandbox.ctx.reader) as session:
        portal = admin.find_portal(session, SANDBOX_PORTAL)
        return admin.user_states(session, portal.id, sandbox.ctx.now())


def sandbox_events(sandbox: Sandbox, limit: int = AUDIT_ROWS) -> list[AuditEvent]:
    """Return the newest audit events of the sandbox portal, newest first."""
    with Session(sandbox.ctx.reader) as session:
        portal_id = admin.find_portal(session, SANDBOX_PORTAL).id
    with sandbox.ctx.reader.connect() as connection:
        return audit.recent_events(connection, portal_id, limit)
