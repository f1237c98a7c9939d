"""The users of the Master Admin's portal with their enrollment state, and the reset.

A reset revokes one internal user's enrollment, so that only that user
enrolls again at the next sign-in. The core rejects a reset of oneself and
of a customer user; the page does not offer either.
"""

from __future__ import annotations

import streamlit as st

from core import admin
from core.admin import UserState
from core.context import Context
from core.errors import InvalidValue, PermissionDenied
from core.models import UserKind
from core.signin import SignedInUser
from dashboard import state
from dashboard.context import get_context
from dashboard.format import as_sentence, escape_markdown
from dashboard.tables import filter_rows, user_table

# The reset waiting for its confirmation: (target username, reason).
PENDING_RESET = "users_pending_reset"


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]
    token = st.session_state[state.SESSION]
    state.init_state({PENDING_RESET: None})

    st.title("Internal users")
    st.write(
        "Every user of the portal with the state of their two-factor enrollment. "
        "Customer users never enroll, so they are listed as not affected."
    )
    state.show_notice()

    try:
        users = admin.list_users(ctx, token, user.portal_slug)
    except PermissionDenied as error:
        st.error(as_sentence(str(error)))
        return

    query = st.text_input("Filter", placeholder="Part of a username, profile or state")
    st.dataframe(filter_rows(user_table(users), query), hide_index=True)

    st.subheader("Reset an enrollment")
    st.write(
        "The user's enrollment is revoked and they enroll again with a new secret at "
        "the next sign-in, for example after losing their phone. Nobody else is "
        "affected. Your own enrollment can be reset only by another Master Admin or "
        "by the vendor's support."
    )
    pending = st.session_state[PENDING_RESET]
    if pending is None:
        reset_form(resettable_users(users, user))
    else:
        confirm_reset(ctx, token, user.portal_slug, *pending)


def resettable_users(users: list[UserState], me: SignedInUser) -> list[str]:
    """Return the internal users other than ``me``, whose enrollment may be reset."""
    return [
        user.username
        for user in users
        if user.kind == UserKind.INTERNAL and user.username != me.username
    ]


def reset_form(usernames: list[str]) -> None:
    if not usernames:
        st.info("There is no other internal user to reset.")
        return

    with st.form("reset_form"):
        target = st.selectbox("User to reset", usernames)
        reason = st.text_input(
            "Reason",
            max_chars=admin.MAX_REASON_CHARS,
            placeholder="For example: lost phone, ticket 1234",
        )
        submitted = st.form_submit_button("Reset")
    if not submitted:
        return

    # NOTE: the core accepts a reset without a reason; this page requires one.
    if not reason.strip():
        st.error("Enter a reason for the reset. It is recorded in the audit log.")
        return
    st.session_state[PENDING_RESET] = (target, reason.strip())
    st.rerun()


def confirm_reset(
    ctx: Context, token: str, portal_slug: str, target: str, reason: str
) -> None:
    st.warning(
        f"Reset the enrollment of **{escape_markdown(target)}**? Their authenticator "
        "entry stops working at once, and they enroll again at the next sign-in. "
        f"Reason: {escape_markdown(reason)}"
    )
    confirm_column, cancel_column = st.columns(2)
    confirmed = confirm_column.button("Confirm reset", type="primary")
    cancelled = cancel_column.button("Cancel")
    if cancelled:
        st.session_state[PENDING_RESET] = None
        st.rerun()
    if not confirmed:
        return

    st.session_state[PENDING_RESET] = None
    try:
        result = admin.reset_enrollment(ctx, token, portal_slug, target, reason)
    except (InvalidValue, PermissionDenied) as error:
        state.keep_notice("error", as_sentence(str(error)))
    else:
        state.keep_notice(
            "success",
            f"The enrollment of {result.target} was reset: {result.revoked} pending or "
            "active enrollment(s) revoked. They enroll again at the next sign-in.",
        )
    st.rerun()


if __name__ == "__main__":
    render()
