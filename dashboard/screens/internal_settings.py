"""Internal settings of the Master Admin's portal: the two-factor switch and the code window.

app.py lists this page for Master Admins only, and the core rejects anyone
else, so the page shows the core's message when that happens.
"""

from __future__ import annotations

import streamlit as st

from core import admin, totp
from core.context import Context
from core.errors import InvalidValue, PermissionDenied
from core.models import SecuritySettings
from dashboard import state
from dashboard.context import get_context
from dashboard.format import as_sentence, describe_switch, escape_markdown
from dashboard.tables import optional_time

# Bumped to recreate the toggle with the stored value after a change or a cancel.
SWITCH_ROUND = "settings_switch_round"

TURN_ON_WARNING = (
    "Turn two-factor authentication on? Every internal user of this portal, you "
    "included, enrolls at the next sign-in: they scan a QR code with an "
    "authenticator app and confirm with its first code. Customer users are not "
    "affected."
)
TURN_OFF_WARNING = (
    "Turn two-factor authentication off? Every enrollment in this portal is revoked, "
    "and turning it on again means everyone enrolls again with a new secret."
)


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]
    token = st.session_state[state.SESSION]
    state.init_state({SWITCH_ROUND: 0})

    st.title("Internal settings")
    st.write(
        f"Security settings of portal **{escape_markdown(user.portal_name)}**. Only a "
        "Master Admin can change them, and every change is recorded in the audit log."
    )
    state.show_notice()

    settings = admin.portal_settings(ctx, user.portal_slug)
    switch_section(ctx, token, user.portal_slug, settings)
    window_section(ctx, token, user.portal_slug, settings)


def switch_section(
    ctx: Context, token: str, portal_slug: str, settings: SecuritySettings
) -> None:
    st.subheader("Two-factor authentication")
    st.write(
        "While this is on, every internal user enters a code from an authenticator "
        "app at every sign-in. Customer users sign in with a password only."
    )
    enabled = settings.two_factor_enabled
    requested = st.toggle(
        "Two-factor authentication",
        value=enabled,
        key=f"two_factor_switch_{enabled}_{st.session_state[SWITCH_ROUND]}",
    )
    st.caption(describe_change(settings))
    if requested == enabled:
        return

    st.warning(TURN_ON_WARNING if requested else TURN_OFF_WARNING)
    confirm_column, cancel_column = st.columns(2)
    confirmed = confirm_column.button(
        "Turn on" if requested else "Turn off", type="primary"
    )
    cancelled = cancel_column.button("Cancel")
    if cancelled:
        recreate_switch()
    if confirmed:
        try:
            result = admin.set_two_factor(ctx, token, portal_slug, requested)
        except PermissionDenied as error:
            st.error(as_sentence(str(error)))
            return
        state.keep_notice("success", describe_switch(result))
        recreate_switch()


def recreate_switch() -> None:
    st.session_state[SWITCH_ROUND] += 1
    st.rerun()


def describe_change(settings: SecuritySettings) -> str:
    if settings.changed_by is None:
        return f"Unchanged since the portal was created ({optional_time(settings.changed_at)})."
    return (
        f"Last change: {optional_time(settings.changed_at)} by {settings.changed_by}. "
        f"Generation {settings.generation}: it grows each time the setting is turned "
        "on, and enrollments of older generations never work again."
    )


def window_label(window: int) -> str:
    if window == 0:
        return "0: the current time step only"
    seconds = window * totp.DEFAULT_PERIOD
    return f"{window}: {window} time step(s) on either side, {seconds} s"


def window_section(
    ctx: Context, token: str, portal_slug: str, settings: SecuritySettings
) -> None:
    st.subheader("Code window")
    st.write(
        f"Codes from the current {totp.DEFAULT_PERIOD}-second time step are always "
        "accepted. The window adds time steps on either side, so that a phone clock "
        "that is slightly off, or slow typing, still works. A wider window gives a "
        "guessed code more chances."
    )
    with st.form("window_form"):
        window = st.selectbox(
            "Window",
            options=list(range(admin.MAX_WINDOW + 1)),
            index=settings.window,
            format_func=window_label,
        )
        submitted = st.form_submit_button("Save window")
    st.caption(
        f"Drift limit: {settings.drift_limit} time step(s). When a phone's codes match "
        "another time step, that offset is remembered up to this many steps. The "
        "deployment sets this limit, not the portal."
    )
    if not submitted:
        return

    try:
        admin.set_window(ctx, token, portal_slug, window)
    except (InvalidValue, PermissionDenied) as error:
        st.error(as_sentence(str(error)))
        return
    state.keep_notice("success", f"The window is now {window_label(window)}.")
    st.rerun()


if __name__ == "__main__":
    render()
