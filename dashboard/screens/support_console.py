"""The support console: find a portal, see its users, and run a guided reset.

The guided reset is the only way back in for a portal whose last Master
Admin is locked out. The core checks the operator's session, the ticket id
and the identity checklist, and audits the reset or its rejection.
"""

from __future__ import annotations

import streamlit as st

from core import operators, reports, support
from core.admin import PROFILE_LABELS, UserState
from core.context import Context
from core.errors import InvalidValue, NotFound, PermissionDenied
from core.messages import format_time
from core.models import Profile, UserKind
from core.operators import SignedInOperator
from core.support import PortalOverview, SupportResetResult
from dashboard import state
from dashboard.context import get_context
from dashboard.format import as_sentence, escape_markdown
from dashboard.tables import audit_table, user_table

# (portal slug, SupportResetResult) of the last guided reset, for its summary.
LAST_RESET = "support_last_reset"
# Bumped after a guided reset, so that the next one starts with an empty form.
RESET_ROUND = "support_reset_round"

CHECK_REQUESTER = "The requester's name and e-mail match the user record"
CHECK_CALLED_BACK = "I called the requester back on the phone number on file"
CHECK_LAST_ADMIN = "Second confirmation: this is the portal's last Master Admin"


def render() -> None:
    ctx = get_context()
    operator = st.session_state[state.OPERATOR]
    token = st.session_state[state.OPERATOR_SESSION]
    state.init_state({LAST_RESET: None, RESET_ROUND: 0})

    st.title("Support console")
    st.write(
        "Look up a portal and the two-factor state of its users. When a user is "
        "locked out, for example a portal's only Master Admin, run a guided reset: "
        "check the requester's identity, record the ticket, reset that one user."
    )
    signed_in_as(ctx, operator, token)
    state.show_notice()

    try:
        slug = choose_portal(ctx, token)
        if slug is None:
            return
        overview = support.portal_overview(ctx, token, slug)
    except (NotFound, PermissionDenied) as error:
        st.error(as_sentence(str(error)))
        return

    show_overview(overview)
    show_last_reset(ctx, token, overview.slug)
    guided_reset(ctx, token, overview)


def signed_in_as(ctx: Context, operator: SignedInOperator, token: str) -> None:
    text_column, button_column = st.columns([4, 1])
    text_column.caption(
        f"Signed in as support operator **{escape_markdown(operator.name)}** until "
        f"{format_time(operator.expires_at)}."
    )
    if button_column.button("Sign out"):
        operators.sign_out_operator(ctx, token)
        state.forget_operator(
            state.Notice("info", "You are signed out of the support console.")
        )
        st.rerun()


def choose_portal(ctx: Context, token: str) -> str | None:
    """Show the portal search and return the chosen slug, or None when nothing matches."""
    text = st.text_input("Portal", placeholder="Part of the portal's slug or name")
    portals = support.find_portals(ctx, token, text.strip())
    if not portals:
        st.info("No portal's slug or name contains that text.")
        return None
    names = {portal.slug: portal.name for portal in portals}
    return st.selectbox(
        "Matching portals",
        list(names),
        format_func=lambda slug: f"{slug} ({names[slug]})",
    )


def show_overview(overview: PortalOverview) -> None:
    st.subheader(f"{overview.name} ({overview.slug})")
    admins, switch, users = st.columns(3)
    admins.metric("Master Admins", overview.master_admins)
    switch.metric(
        "Two-factor authentication", "On" if overview.two_factor_enabled else "Off"
    )
    users.metric("Users", len(overview.users))

    if overview.master_admins == 0:
        st.error("This portal has no active Master Admin.")
    elif overview.master_admins == 1:
        st.warning(
            "This portal has one active Master Admin. If they are locked out, only a "
            "guided reset lets them in again."
        )
    st.dataframe(user_table(overview.users), hide_index=True)


def is_last_master_admin(user: UserState, overview: PortalOverview) -> bool:
    return (
        user.profile == PROFILE_LABELS[Profile.MASTER_ADMIN]
        and user.active
        and overview.master_admins == 1
    )


def describe_user(user: UserState) -> str:
    lock = (
        f", locked until {format_time(user.locked_until)}" if user.locked_until else ""
    )
    return f"{user.username} ({user.profile}, {user.state}{lock})"


def show_last_reset(ctx: Context, token: str, portal_slug: str) -> None:
    """Show the summary of the last guided reset in this portal, with its audit entry."""
    last = st.session_state[LAST_RESET]
    if last is None or last[0] != portal_slug:
        return
    result: SupportResetResult = last[1]

    summary = (
        f"The enrollment of {result.target} was reset: {result.revoked} pending or "
        "active enrollment(s) revoked. They enroll again at the next sign-in."
    )
    if result.was_last_master_admin:
        summary += " They were the portal's last Master Admin."
    st.success(summary)

    events = reports.audit_events(
        ctx, reports.Viewer(operator_session=token), portal_slug=portal_slug, limit=5
    )
    entry = [event for event in events if event.id == result.audit_event_id]
    if entry:
        st.write("Audit entry of this reset:")
        st.dataframe(audit_table(entry), hide_index=True)
    else:
        st.info(
            f"The audit entry {result.audit_event_id} is no longer among the portal's "
            "five newest events. Find it on the Audit log page."
        )


def guided_reset(ctx: Context, token: str, overview: PortalOverview) -> None:
    st.subheader("Guided reset")
    st.write(
        "The user's enrollment is revoked, and they enroll again with a new secret "
        "at the next sign-in. Nobody else is affected. Reset only after both "
        "identity checks, and give the ticket id of the request."
    )
    internal = {
        user.username: user for user in overview.users if user.kind == UserKind.INTERNAL
    }
    if not internal:
        st.info("This portal has no internal user.")
        return

    username = st.selectbox(
        "User to reset",
        list(internal),
        format_func=lambda name: describe_user(internal[name]),
    )
    last_admin = is_last_master_admin(internal[username], overview)

    # One form per portal and user, so that ticked checks never carry over to another user.
    form_key = (
        f"guided_reset_{overview.slug}_{username}_{st.session_state[RESET_ROUND]}"
    )
    with st.form(form_key):
        requester_matches = st.checkbox(CHECK_REQUESTER)
        called_back = st.checkbox(CHECK_CALLED_BACK)
        last_admin_confirmed = False
        if last_admin:
            st.warning(
                f"{username} is this portal's last Master Admin. Nobody in the portal "
                "can reset them, so confirm a second time."
            )
            last_admin_confirmed = st.checkbox(CHECK_LAST_ADMIN)
        ticket = st.text_input("Ticket", placeholder="For example SUP-1042")
        submitted = st.form_submit_button("Reset", type="primary")
    if not submitted:
        return

    checklist = support.Checklist(
        requester_matches=requester_matches,
        called_back=called_back,
        last_admin_confirmed=last_admin_confirmed,
    )
    try:
        result = support.support_reset(
            ctx, token, ticket.strip(), overview.slug, username, checklist
        )
    except (InvalidValue, NotFound, PermissionDenied) as error:
        st.error(as_sentence(str(error)))
        return
    st.session_state[LAST_RESET] = (overview.slug, result)
    st.session_state[RESET_ROUND] += 1
    st.rerun()


if __name__ == "__main__":
    render()
