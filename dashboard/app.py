"""Streamlit entry file: choose the pages for the visitor's role and run one.

Start it with ``twofa dashboard``, which seeds the demo portal first, or with
``streamlit run dashboard/app.py``. The database comes from
TWOFA_DATABASE_URL or TWOFA_DATA_DIR, as for the command line.
"""

from __future__ import annotations

import logging
import traceback

import streamlit as st

from core import operators, signin
from core.errors import NotSignedIn, TwoFactorError
from core.models import Profile, UserKind
from core.operators import SignedInOperator
from core.signin import SignedInUser
from dashboard import state
from dashboard.context import get_context
from dashboard.pages import (
    AUDIT_LOG,
    ENROLLMENT_OVERVIEW,
    FLOW_EXPLORER,
    HOME,
    INTERNAL_SETTINGS,
    INTERNAL_USERS,
    SIGN_IN,
    SIMULATIONS,
    SUPPORT_CONSOLE,
    SUPPORT_SIGN_IN,
    PageSpec,
)

log = logging.getLogger("dashboard.app")


# Extra pages by role: a Profile value for internal users, or "customer".
ROLE_PAGES: dict[str, tuple[PageSpec, ...]] = {
    Profile.MASTER_ADMIN.value: (
        INTERNAL_SETTINGS,
        INTERNAL_USERS,
        ENROLLMENT_OVERVIEW,
        AUDIT_LOG,
    ),
}
OPERATOR_PAGES = (SUPPORT_CONSOLE, AUDIT_LOG)
# The flow explorer and the simulations work on sandboxes of their own, so
# every visitor gets them.
EVERYONE_PAGES = (FLOW_EXPLORER, SIMULATIONS)


def role_of(user: SignedInUser) -> str:
    if user.kind == UserKind.CUSTOMER or user.profile is None:
        return UserKind.CUSTOMER.value
    return user.profile


def page_sections(
    user: SignedInUser | None, operator: SignedInOperator | None
) -> dict[str, list[PageSpec]]:
    """Return the pages that the visitor may open, by navigation section.

    A portal user and a support operator may be signed in at once in one
    browser session. A page that both may open is listed once.
    """
    portal = [SIGN_IN] if user is None else [HOME, *ROLE_PAGES.get(role_of(user), ())]
    sections = {"Portal": portal}
    if operator is not None:
        sections["Support"] = [spec for spec in OPERATOR_PAGES if spec not in portal]
    elif user is None:
        sections["Support"] = [SUPPORT_SIGN_IN]
    sections["Explore"] = list(EVERYONE_PAGES)
    return sections


def default_page(
    user: SignedInUser | None, operator: SignedInOperator | None
) -> PageSpec:
    """Return the page shown when the requested page is not open to the visitor."""
    if user is not None:
        return HOME
    if operator is not None:
        return SUPPORT_CONSOLE
    return SIGN_IN


def pages_for(
    user: SignedInUser | None, operator: SignedInOperator | None
) -> dict[str, list[st.Page]]:
    """Build the ``st.Page`` objects of ``page_sections`` for st.navigation."""
    default = default_page(user, operator)
    return {
        section: [
            st.Page(
                spec.script,
                title=spec.title,
                url_path=spec.url_path,
                icon=spec.icon,
                default=spec == default,
            )
            for spec in specs
        ]
        for section, specs in page_sections(user, operator).items()
    }


def load_user() -> SignedInUser | None:
    """Return the user of the session token in the state, dropping an ended session."""
    token = st.session_state[state.SESSION]
    if token is None:
        st.session_state[state.USER] = None
        return None
    try:
        user = signin.current_user(get_context(), token)
    except NotSignedIn:
        state.forget_session(
            state.Notice("error", "Your session has ended. Sign in again.")
        )
        return None
    st.session_state[state.USER] = user
    return user


def load_operator() -> SignedInOperator | None:
    """Return the support operator of the operator session, dropping an ended session."""
    token = st.session_state[state.OPERATOR_SESSION]
    if token is None:
        st.session_state[state.OPERATOR] = None
        return None
    try:
        operator = operators.current_operator(get_context(), token)
    except NotSignedIn:
        state.forget_operator(
            state.Notice("error", "Your support session has ended. Sign in again.")
        )
        return None
    st.session_state[state.OPERATOR] = operator
    return operator


def report_failure(error: Exception, page_title: str | None) -> None:
    """Log an unexpected error and show a short message in place of a stack trace."""
    name = type(error).__name__
    stack = "".join(traceback.format_tb(error.__traceback__))
    if isinstance(error, TwoFactorError):
        # core.errors promises that these messages name no secret, code or password.
        log.error("Page %r failed with %s: %s\n%s", page_title, name, error, stack)
    else:
        # Other messages may quote what was typed, such as a code, so only the type is logged.
        log.error("Page %r failed with %s\n%s", page_title, name, stack)
    st.error(
        "Something went wrong and the error was logged. Try again, or reload the "
        "page to start over."
    )


def main() -> None:
    # A no-op when the root logger already has a handler, as under pytest.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    st.set_page_config(page_title="Billing portal sign-in", page_icon=":material/lock:")
    state.init_state()

    # In Streamlit 1.67, st.rerun and st.stop raise BaseException subclasses, so
    # they pass through this handler.
    page_title = None
    try:
        page = st.navigation(pages_for(load_user(), load_operator()))
        page_title = page.title
        page.run()
    except Exception as error:
        report_failure(error, page_title)


main()
