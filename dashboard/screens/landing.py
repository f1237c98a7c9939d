"""The landing page of a signed-in user: who is signed in, what they can do, and the
sign-out button."""

from __future__ import annotations

import streamlit as st

from core import signin
from core.messages import format_time
from core.models import Profile, UserKind
from core.signin import SignedInUser
from dashboard import pages, state
from dashboard.context import get_context
from dashboard.format import escape_markdown, profile_label

# The pages of a Master Admin, each with the actions it offers.
MASTER_ADMIN_PAGES = (
    (
        pages.INTERNAL_SETTINGS,
        "Turn two-factor authentication on or off, and set the code window.",
    ),
    (
        pages.INTERNAL_USERS,
        "See each user's enrollment state, and reset another user's enrollment.",
    ),
    (pages.ENROLLMENT_OVERVIEW, "Follow how many internal users have enrolled."),
    (pages.AUDIT_LOG, "Read, filter and download the portal's security events."),
)


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]

    st.title("Signed in")
    st.write("You are signed in to the billing portal.")

    method = "password and authentication code" if user.with_code else "password only"
    st.markdown(
        f"- Username: **{escape_markdown(user.username)}**\n"
        f"- Portal: **{escape_markdown(user.portal_name)}** "
        f"({escape_markdown(user.portal_slug)})\n"
        f"- Profile: **{escape_markdown(profile_label(user))}**\n"
        f"- Signed in with: **{method}**\n"
        f"- Session ends: {format_time(user.expires_at)}"
    )

    show_what_you_can_do(user)

    if st.button("Sign out"):
        signin.sign_out(ctx, st.session_state[state.SESSION])
        state.forget_session(state.Notice("info", "You are signed out."))
        st.rerun()


def show_what_you_can_do(user: SignedInUser) -> None:
    st.subheader("What you can do")
    if user.profile == Profile.MASTER_ADMIN:
        st.write(
            "As a Master Admin you manage two-factor authentication for your portal:"
        )
        for page, description in MASTER_ADMIN_PAGES:
            st.page_link(page.script, label=page.title, icon=page.icon)
            st.caption(description)
    elif user.kind == UserKind.CUSTOMER:
        st.write(
            "Customer users sign in with a password only, whatever the portal's "
            "two-factor setting."
        )
    else:
        st.write(
            "Two-factor settings, the user list and resets need a Master Admin. If "
            "you lose your phone, ask a Master Admin of your portal to reset your "
            "enrollment."
        )
    page = pages.FLOW_EXPLORER
    st.page_link(page.script, label=page.title, icon=page.icon)
    st.caption("Try the sign-in flows on a sandbox portal, without touching real data.")


if __name__ == "__main__":
    render()
