"""A demo portal for trying the product: a Master Admin, a standard user and a customer."""

from __future__ import annotations

from dataclasses import dataclass

from core import admin, signin
from core.context import Context

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
    """Create the demo portal with two-factor authentication on.

    Only a database without any portal is seeded, because the demo passwords
    are public. Return False when nothing was created.
    """
    if admin.list_portals(ctx):
        return False

    admin.create_portal(ctx, DEMO_PORTAL, DEMO_PORTAL_NAME)
    owner, *others = DEMO_ACCOUNTS
    admin.add_user(ctx, DEMO_PORTAL, owner.username, owner.password, owner.profile)

    # The owner adds the others and turns the switch on through the normal core calls.
    result = signin.submit_password(ctx, DEMO_PORTAL, owner.username, owner.password)
    for account in others:
        admin.add_user(
            ctx,
            DEMO_PORTAL,
            account.username,
            account.password,
            account.profile,
            result.session,
        )
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
