"""The pages of the dashboard: one file under screens/ each, with its title and URL path.

app.py chooses among them by role; the landing page links to them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    """The arguments of one ``st.Page``. The url_path must be unique across the app.

    ``script`` is relative to dashboard/app.py, as st.Page and st.page_link
    expect. Pages are files rather than callables so that AppTest.switch_page
    can open them.
    """

    script: str
    title: str
    url_path: str
    icon: str


SIGN_IN = PageSpec("screens/sign_in.py", "Sign in", "sign-in", ":material/login:")
HOME = PageSpec("screens/landing.py", "Home", "home", ":material/home:")
INTERNAL_SETTINGS = PageSpec(
    "screens/internal_settings.py",
    "Internal settings",
    "internal-settings",
    ":material/admin_panel_settings:",
)
INTERNAL_USERS = PageSpec(
    "screens/internal_users.py", "Internal users", "internal-users", ":material/group:"
)
ENROLLMENT_OVERVIEW = PageSpec(
    "screens/enrollment_overview.py",
    "Enrollment overview",
    "enrollment-overview",
    ":material/monitoring:",
)
AUDIT_LOG = PageSpec(
    "screens/audit_log.py", "Audit log", "audit-log", ":material/receipt_long:"
)
SUPPORT_SIGN_IN = PageSpec(
    "screens/support_sign_in.py",
    "Support sign-in",
    "support-sign-in",
    ":material/support_agent:",
)
SUPPORT_CONSOLE = PageSpec(
    "screens/support_console.py",
    "Support console",
    "support-console",
    ":material/support_agent:",
)
FLOW_EXPLORER = PageSpec(
    "screens/flow_explorer.py", "Flow explorer", "flow-explorer", ":material/science:"
)
SIMULATIONS = PageSpec(
    "screens/simulations.py", "Simulations", "simulations", ":material/query_stats:"
)
