"""Streamlit entry file: choose the pages for the visitor's role and run one.

Start it with ``twofa dashboard``, which seeds the demo portal first, or with
``streamlit run dashboard/app.py``. The database comes from
TWOFA_DATABASE_URL or TWOFA_DATA_DIR, as for the command line.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core import signin
from core.errors import NotSignedIn, TwoFactorError
from core.models import UserKind
from core.signin import SignedInUser
from dashboard import state
from dashboard.context import get_context
from dashboard.screens import landing, sign_in

log = logging.getLogger("dashboard.app")


@dataclass(frozen=True)
class PageSpec:
    """The arguments of one ``st.Page``. The url_path must be unique across the app."""

    render: Callable[[], None]
    title: str
    url_path: str
    icon: str


SIGNED_OUT_PAGES = (PageSpec(sign_in.render, "Sign in", "sign-in", ":material/login:"),)
SIGNED_IN_PAGES = (PageSpec(landing.render, "Home", "home", ":material/home:"),)

# Extra pages by role: a Profile value for internal users, or "customer".
# For example a Master Admin's security settings page goes under "master_admin".
ROLE_PAGES: dict[str, tuple[PageSpec, ...]] = {}


def role_of(user: SignedInUser) -> str:
    if user.kind == UserKind.CUSTOMER or user.profile is None:
        return UserKind.CUSTOMER.value
    return user.profile


def pages_for(user: SignedInUser | None) -> list[st.Page]:
    """Build the pages that ``user`` may open; the first one is the default."""
    if user is None:
        specs = SIGNED_OUT_PAGES
    else:
        specs = SIGNED_IN_PAGES + ROLE_PAGES.get(role_of(user), ())
    return [
        st.Page(
            spec.render,
            title=spec.title,
            url_path=spec.url_path,
            icon=spec.icon,
            default=index == 0,
        )
        for index, spec in enumerate(specs)
    ]


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
        page = st.navigation(pages_for(load_user()))
        page_title = page.title
        page.run()
    except Exception as error:
        report_failure(error, page_title)


main()
