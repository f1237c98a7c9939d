"""Every privileged core call for every kind of actor, on their own portal and on another.

The actors act on "acme-NNNN", the portal of every portal-user actor, and on
"other-NNNN". An allowed call that changes something gets two freshly built
portals. Every other call (the refused ones and the allowed reads) shares
one pair of portals per database. Each such call must leave every row except
the audit log as it was. Its test checks this, so a call that changed
something fails in its own cell. A refused call must also raise and add one
``action_rejected`` audit row.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import pytest
from sqlalchemy import func, select, text
from sqlmodel import SQLModel

from core import admin, reports, signin, support
from core.audit import Event, Outcome
from core.clock import ManualClock
from core.context import Context, open_context
from core.errors import NotSignedIn, PermissionDenied
from core.models import AuditEvent, User
from core.signin import Status
from core.support import Checklist
from tests.helpers import SEEN, START, add_operator, code_at, operator_session

ACTORS = (
    "master_admin",
    "admin",
    "standard",
    "read_only",
    "customer",
    "operator",
    "anonymous",
    "forged",
)
PORTAL_USERS = {
    "master_admin": "boss",
    "admin": "ann",
    "standard": "sam",
    "read_only": "rita",
    "customer": "cory",
}
PROFILE_OF = {
    "boss": "master-admin",
    "ann": "admin",
    "sam": "standard",
    "rita": "read-only",
    "cory": "customer",
    "tess": "standard",  # target of the resets on the actors' own portal
    "olga": "master-admin",
    "otto": "standard",  # target of the resets on the other portal
}
OWN_USERS = ("boss", "ann", "sam", "rita", "cory", "tess")
OTHER_USERS = ("olga", "otto")
RESET_TARGET = {"own": "tess", "other": "otto"}
INTERNAL_COUNT = {"own": 5, "other": 2}
PASSWORDS = {name: f"{name.title()}-matrix-pass-4417" for name in PROFILE_OF}
NEW_USER = "newcomer"
NEW_USER_PASSWORD = "Newcomer-matrix-pass-9012"
SEEN.passwords.update(PASSWORDS.values())
SEEN.passwords.add(NEW_USER_PASSWORD)

TICKET = "SUP-1042"
FULL_CHECKLIST = Checklist(
    requester_matches=True, called_back=True, last_admin_confirmed=True
)

# The expected outcome of every call. Each actor has two letters: the outcome
# on the actor's own portal, then on the other portal. A: allowed.
# D: PermissionDenied (and not NotSignedIn). N: NotSignedIn. The operator and
# the anonymous and forged sessions belong to no portal, so "own" is simply
# the first portal for them. The columns follow ACTORS.
EXPECTED_TABLE = """
action                 boss ann  sam  rita cory oper anon forged
set_two_factor         AD   DD   DD   DD   DD   NN   NN   NN
set_window             AD   DD   DD   DD   DD   NN   NN   NN
add_user               AD   DD   DD   DD   DD   NN   NN   NN
list_users             AD   DD   DD   DD   DD   NN   NN   NN
reset_other_user       AD   DD   DD   DD   DD   NN   NN   NN
reset_own_enrollment   DD   DD   DD   DD   DD   NN   NN   NN
audit_events           AD   DD   DD   DD   DD   AA   NN   NN
enrollment_overview    AD   DD   DD   DD   DD   AA   NN   NN
portal_overview        NN   NN   NN   NN   NN   AA   NN   NN
find_portals           NN   NN   NN   NN   NN   AA   NN   NN
support_reset          NN   NN   NN   NN   NN   AA   NN   NN
"""
EXPECTED = {
    line.split()[0]: line.split()[1:]
    for line in EXPECTED_TABLE.strip().splitlines()[1:]
}


def expected_outcome(action: str, actor: str, where: str) -> str:
    pair = EXPECTED[action][ACTORS.index(actor)]
    return pair[0] if where == "own" else pair[1]


CELLS = [
    (action, actor, where)
    for action in EXPECTED
    for actor in ACTORS
    for where in ("own", "other")
]
# Allowed calls of these actions only read, so they share the portals of the refusals.
READ_ACTIONS = {
    "list_users",
    "audit_events",
    "enrollment_overview",
    "portal_overview",
    "find_portals",
}
ALLOWED_READS = [
    cell for cell in CELLS if expected_outcome(*cell) == "A" and cell[0] in READ_ACTIONS
]
ALLOWED_CHANGES = [
    cell
    for cell in CELLS
    if expected_outcome(*cell) == "A" and cell[0] not in READ_ACTIONS
]
REFUSED_CELLS = [cell for cell in CELLS if expected_outcome(*cell) != "A"]


def cell_id(cell: tuple[str, str, str]) -> str:
    return "-".join(cell)


def audited_refusal_params():
    params = []
    for action, actor, where in REFUSED_CELLS:
        params.append(
            pytest.param(action, actor, where, id=cell_id((action, actor, where)))
        )
    return params


# ---------------------------------------------------------------------------
# One database per backend for the module. Portals per changing call, or shared.

_portal_numbers = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_ctx(request, tmp_path_factory, postgres_admin):
    """A context on a database shared by every test of this module."""
    clock = ManualClock(START)
    folder = tmp_path_factory.mktemp("access-matrix")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'twofa.sqlite3'}"
    else:
        if postgres_admin is None:
            pytest.skip(
                "TWOFA_TEST_POSTGRES_URL is not set: start a throwaway cluster with "
                '`eval "$(scripts/test-postgres.sh start /tmp/twofa-pg)"`'
            )
        database = f"twofa_test_{uuid.uuid4().hex[:16]}"
        with postgres_admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        url = postgres_admin.url.set(database=database).render_as_string(
            hide_password=False
        )
    context = open_context(
        url, clock=clock, key_file=folder / "twofa.key", fast_hashing=True
    )
    yield context
    context.close()
    if database is not None:
        with postgres_admin.connect() as connection:
            connection.execute(
                text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            )


@dataclass
class World:
    """Two portals with every actor signed in. A session is a token, or None."""

    slugs: dict[str, str]  # "own" or "other" -> portal slug
    portal_ids: dict[str, int]
    sessions: dict[str, str | None]  # actor -> session token
    operator_name: str


def sign_in_enrolling(ctx: Context, slug: str, username: str) -> str:
    """Enroll an internal user at their first sign-in and return the session token."""
    result = signin.submit_password(ctx, slug, username, PASSWORDS[username])
    assert result.status == Status.ENROLLMENT_REQUIRED, result
    secret = pyotp.parse_uri(signin.enrollment_offer(ctx, result.challenge).uri).secret
    SEEN.add_secret(secret)
    done = signin.submit_code(ctx, result.challenge, code_at(secret, ctx.now()))
    assert done.status == Status.SIGNED_IN, done
    return done.session


def build_portal(ctx: Context, slug: str, name: str, usernames: tuple[str, ...]):
    """Create a portal with two-factor on and every internal user enrolled.

    Return the sessions of every user by username.
    """
    admin.create_portal(ctx, slug, name)
    master, *others = usernames
    admin.add_user(ctx, slug, master, PASSWORDS[master], PROFILE_OF[master])
    first = signin.submit_password(ctx, slug, master, PASSWORDS[master])
    assert first.status == Status.SIGNED_IN, first
    for username in others:
        admin.add_user(
            ctx,
            slug,
            username,
            PASSWORDS[username],
            PROFILE_OF[username],
            first.session,
        )
    admin.set_two_factor(ctx, first.session, slug, True)
    signin.sign_out(ctx, first.session)

    sessions = {}
    for username in usernames:
        if PROFILE_OF[username] == "customer":
            result = signin.submit_password(ctx, slug, username, PASSWORDS[username])
            assert result.status == Status.SIGNED_IN, result
            sessions[username] = result.session
        else:
            sessions[username] = sign_in_enrolling(ctx, slug, username)
    return sessions


def build_world(ctx: Context) -> World:
    """Build a fresh pair of portals and an operator, and sign every actor in."""
    number = next(_portal_numbers)
    slugs = {"own": f"acme-{number:04d}", "other": f"other-{number:04d}"}
    own = build_portal(ctx, slugs["own"], "Acme Billing", OWN_USERS)
    build_portal(ctx, slugs["other"], "Other Billing", OTHER_USERS)

    operator_name = f"Jo Ops {number:04d}"
    secret = add_operator(ctx, operator_name)
    sessions: dict[str, str | None] = {
        actor: own[username] for actor, username in PORTAL_USERS.items()
    }
    sessions["operator"] = operator_session(ctx, secret, operator_name)
    sessions["anonymous"] = None
    sessions["forged"] = secrets.token_urlsafe(32)

    portal_ids = {
        where: admin.portal_settings(ctx, slug).portal_id
        for where, slug in slugs.items()
    }
    return World(slugs, portal_ids, sessions, operator_name)


@pytest.fixture
def fresh_world(shared_ctx) -> World:
    return build_world(shared_ctx)


@pytest.fixture(scope="module")
def shared_world(shared_ctx) -> World:
    return build_world(shared_ctx)


# ---------------------------------------------------------------------------
# The actions, each called as the given actor on the given portal.


def viewer_of(world: World, actor: str) -> reports.Viewer:
    if actor == "operator":
        return reports.Viewer(operator_session=world.sessions[actor])
    return reports.Viewer(session=world.sessions[actor])


def own_name(world: World, actor: str) -> str:
    """Return the actor's own name. A session without a user claims the Master Admin's."""
    if actor == "operator":
        return world.operator_name
    return PORTAL_USERS.get(actor, "boss")


ACTIONS: dict[str, Callable[[Context, World, str, str], object]] = {
    "set_two_factor": lambda ctx, world, actor, where: admin.set_two_factor(
        ctx, world.sessions[actor], world.slugs[where], False
    ),
    "set_window": lambda ctx, world, actor, where: admin.set_window(
        ctx, world.sessions[actor], world.slugs[where], 3
    ),
    "add_user": lambda ctx, world, actor, where: admin.add_user(
        ctx,
        world.slugs[where],
        NEW_USER,
        NEW_USER_PASSWORD,
        "standard",
        world.sessions[actor],
    ),
    "list_users": lambda ctx, world, actor, where: admin.list_users(
        ctx, world.sessions[actor], world.slugs[where]
    ),
    "reset_other_user": lambda ctx, world, actor, where: admin.reset_enrollment(
        ctx,
        world.sessions[actor],
        world.slugs[where],
        RESET_TARGET[where],
        "lost phone",
    ),
    "reset_own_enrollment": lambda ctx, world, actor, where: admin.reset_enrollment(
        ctx,
        world.sessions[actor],
        world.slugs[where],
        own_name(world, actor),
        "new phone",
    ),
    "audit_events": lambda ctx, world, actor, where: reports.audit_events(
        ctx, viewer_of(world, actor), portal_slug=world.slugs[where]
    ),
    "enrollment_overview": lambda ctx, world, actor, where: reports.enrollment_overview(
        ctx, viewer_of(world, actor), world.slugs[where]
    ),
    "portal_overview": lambda ctx, world, actor, where: support.portal_overview(
        ctx, world.sessions[actor], world.slugs[where]
    ),
    "find_portals": lambda ctx, world, actor, where: support.find_portals(
        ctx, world.sessions[actor], world.slugs[where]
    ),
    "support_reset": lambda ctx, world, actor, where: support.support_reset(
        ctx,
        world.sessions[actor],
        TICKET,
        world.slugs[where],
        RESET_TARGET[where],
        FULL_CHECKLIST,
    ),
}


# ---------------------------------------------------------------------------
# Database state before and after a call.


def portal_of_row(table_name: str, row, portal_by_user: dict[int, int]) -> int | None:
    if table_name == "portal":
        return row["id"]
    if "portal_id" in row:
        return row["portal_id"]
    if "user_id" in row:
        return portal_by_user[row["user_id"]]
    return None  # operators and their sessions belong to no portal


def snapshot(ctx: Context) -> dict[int | None, list[tuple]]:
    """Return every row except the audit log, grouped by the portal it belongs to."""
    state: dict[int | None, list[tuple]] = {}
    with ctx.engine.connect() as connection:
        portal_by_user = dict(connection.execute(select(User.id, User.portal_id)).all())
        for table in SQLModel.metadata.sorted_tables:
            if table.name == AuditEvent.__tablename__:
                continue
            ordered = select(table).order_by(*table.primary_key.columns)
            for row in connection.execute(ordered):
                portal = portal_of_row(table.name, row._mapping, portal_by_user)
                state.setdefault(portal, []).append((table.name, *row))
    return state


def last_audit_id(ctx: Context) -> int:
    with ctx.engine.connect() as connection:
        return connection.execute(select(func.max(AuditEvent.id))).scalar_one() or 0


def audit_rows_after(ctx: Context, audit_id: int) -> list:
    with ctx.engine.connect() as connection:
        return connection.execute(
            select(AuditEvent.__table__)
            .where(AuditEvent.id > audit_id)
            .order_by(AuditEvent.id)
        ).all()


# ---------------------------------------------------------------------------
# What an allowed call must have done.


def user_state_list(ctx: Context, world: World, where: str) -> list[admin.UserState]:
    """Return a portal's user list, read through the operator's overview."""
    return support.portal_overview(
        ctx, world.sessions["operator"], world.slugs[where]
    ).users


def user_state(ctx: Context, world: World, where: str, username: str):
    states = user_state_list(ctx, world, where)
    return {state.username: state for state in states}.get(username)


def check_allowed(ctx: Context, world: World, action: str, where: str, result) -> None:
    slug = world.slugs[where]
    expected_users = set(OWN_USERS if where == "own" else OTHER_USERS)
    if action == "set_two_factor":
        assert result.changed is True
        assert result.revoked == INTERNAL_COUNT[where]
        assert admin.portal_settings(ctx, slug).two_factor_enabled is False
    elif action == "set_window":
        assert admin.portal_settings(ctx, slug).window == 3
    elif action == "add_user":
        added = user_state(ctx, world, where, NEW_USER)
        assert added is not None
        assert added.profile == "Standard"
    elif action == "list_users":
        assert {state.username for state in result} == expected_users
    elif action in ("reset_other_user", "support_reset"):
        target = RESET_TARGET[where]
        assert result.target == target
        assert result.revoked == 1
        assert user_state(ctx, world, where, target).state == "not enrolled"
        others = [
            state
            for state in user_state_list(ctx, world, where)
            if state.username != target and state.kind == "internal"
        ]
        assert {state.state for state in others} == {"active"}
    elif action == "audit_events":
        assert result, "the audit log of the portal is empty"
        assert {event.portal_id for event in result} == {world.portal_ids[where]}
        assert Event.PORTAL_CREATED in {event.event for event in result}
    elif action == "enrollment_overview":
        assert result.portal_slug == slug
        assert result.enrolled == INTERNAL_COUNT[where]
        assert result.pending == 0
        assert result.not_started == 0
    elif action == "portal_overview":
        assert result.slug == slug
        assert result.two_factor_enabled is True
        assert result.master_admins == 1
        assert {state.username for state in result.users} == expected_users
    elif action == "find_portals":
        assert [portal.slug for portal in result] == [slug]
    else:
        raise AssertionError(f"no check for the allowed action {action!r}")


# ---------------------------------------------------------------------------
# The tests.


def test_expected_table_is_complete():
    assert set(EXPECTED) == set(ACTIONS)
    for action, pairs in EXPECTED.items():
        assert len(pairs) == len(ACTORS), action
        assert all(len(pair) == 2 and set(pair) <= set("ADN") for pair in pairs), action


@pytest.mark.parametrize(
    ("action", "actor", "where"), ALLOWED_CHANGES, ids=map(cell_id, ALLOWED_CHANGES)
)
def test_allowed_change(shared_ctx, fresh_world, action, actor, where):
    ctx, world = shared_ctx, fresh_world
    before = snapshot(ctx)

    result = ACTIONS[action](ctx, world, actor, where)

    check_allowed(ctx, world, action, where, result)
    acted_on = world.portal_ids[where]
    after = snapshot(ctx)
    untouched_before = {key: rows for key, rows in before.items() if key != acted_on}
    untouched_after = {key: rows for key, rows in after.items() if key != acted_on}
    assert untouched_after == untouched_before, "an allowed call changed another portal"


@pytest.mark.parametrize(
    ("action", "actor", "where"), ALLOWED_READS, ids=map(cell_id, ALLOWED_READS)
)
def test_allowed_read(shared_ctx, shared_world, action, actor, where):
    ctx, world = shared_ctx, shared_world
    before = snapshot(ctx)

    result = ACTIONS[action](ctx, world, actor, where)

    check_allowed(ctx, world, action, where, result)
    assert snapshot(ctx) == before, "a read changed the database"


@pytest.mark.parametrize(
    ("action", "actor", "where"), REFUSED_CELLS, ids=map(cell_id, REFUSED_CELLS)
)
def test_refused_cell(shared_ctx, shared_world, action, actor, where):
    ctx, world = shared_ctx, shared_world
    outcome = expected_outcome(action, actor, where)
    before = snapshot(ctx)

    with pytest.raises(PermissionDenied) as raised:
        ACTIONS[action](ctx, world, actor, where)

    if outcome == "N":
        assert isinstance(raised.value, NotSignedIn), repr(raised.value)
    else:
        assert not isinstance(raised.value, NotSignedIn), repr(raised.value)
    assert str(raised.value), "the refusal has no message"
    assert snapshot(ctx) == before, "a refused call changed the database"


@pytest.mark.parametrize(("action", "actor", "where"), audited_refusal_params())
def test_refusal_is_audited(shared_ctx, shared_world, action, actor, where):
    ctx, world = shared_ctx, shared_world
    since = last_audit_id(ctx)

    with pytest.raises(PermissionDenied):
        ACTIONS[action](ctx, world, actor, where)

    rows = audit_rows_after(ctx, since)
    assert len(rows) == 1, [row.event for row in rows]
    row = rows[0]
    assert row.event == Event.ACTION_REJECTED
    assert row.outcome == Outcome.REJECTED
    if action != "find_portals":
        assert row.portal_slug == world.slugs[where]
    if actor in PORTAL_USERS and expected_outcome(action, actor, where) == "D":
        assert row.actor_kind == "user"
        assert row.actor == PORTAL_USERS[actor]
