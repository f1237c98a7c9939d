"""A demo portal for trying the product: a Master Admin, a standard user and a customer."""

from __future__ import annotations

from dataclasses import dataclass

from core import admin, signin
from core.context import Context
from core.errors import NotFound

DEMO_PORTAL = "demo"
DEMO_PORTAL_NAME = "Demo Billing"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    profile: str
    note: str


# Demo passwords are printed on purpose; they protect only the demo portal.
DEMO_ACCOUNTS = (
    DemoAccount("owner", "owner-demo-pass", "master-admin", "Master Admin"),
    DemoAccount("alex", "alex-demo-pass", "standard", "internal, Standard profile"),
    DemoAccount(
        "casey", "casey-demo-pass", "customer", "customer, never asked for a code"
    ),
)


def seed_demo(ctx: Context) -> bool:
    """Create the demo portal with two-factor authentication on; False if it exists."""
    try:
        admin.portal_settings(ctx, DEMO_PORTAL)
        return False
    except NotFound:
        pass

    admin.create_portal(ctx, DEMO_PORTAL, DEMO_PORTAL_NAME)
    for account in DEMO_ACCOUNTS:
        admin.add_user(
            ctx, DEMO_PORTAL, account.username, account.password, account.profile
        )

    # The owner turns the switch on through the normal sign-in and core call.
    owner = DEMO_ACCOUNTS[0]
    result = signin.submit_password(ctx, DEMO_PORTAL, owner.username, owner.password)
    admin.set_two_factor(ctx, result.session, DEMO_PORTAL, True)
    signin.sign_out(ctx, result.session)
    return True


def describe_demo() -> str:
    lines = [
        f"Demo portal {DEMO_PORTAL!r} ({DEMO_PORTAL_NAME}), two-factor authentication on:"
    ]
    for account in DEMO_ACCOUNTS:
        lines.append(
            f"  {account.username:<6} password {account.password:<16} {account.note}"
        )
    return "\n".join(lines)
