"""The core context of this Streamlit process, and the portal check of the sign-in page."""

from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy.engine import make_url

from core import admin, db
from core.context import Context, open_context

log = logging.getLogger(__name__)


def get_context() -> Context:
    """Return the context of the configured database, opening it on first use."""
    return _open_context(db.database_url())


# Keyed on the URL, so a process that changes TWOFA_DATABASE_URL (as the tests do)
# never gets the engine of another database.
@st.cache_resource(show_spinner=False)
def _open_context(url: str) -> Context:
    shown_url = make_url(url).render_as_string(hide_password=True)
    log.info("Opening the core context for %s", shown_url)
    return open_context(url)


def has_portal(ctx: Context) -> bool:
    """Return True when the database contains at least one portal."""
    return bool(admin.list_portals(ctx))
