"""Attacks that once worked or crashed: stale sessions, lock oracles, odd text, file modes."""

import os
import stat
import subprocess
import sys

import pytest
from sqlmodel import Session, select

from core import admin, operators, signin
from core.audit import Event
from core.errors import InvalidValue, NotSignedIn, PermissionDenied
from core.models import AuditEvent
from core.signin import Status
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    add_acme,
    code_at,
    code_challenge,
    enroll,
    password_only,
)

SURROGATE = "x\ud800y"


def test_switch_on_ends_password_only_sessions_but_the_actors(ctx):
    boss = add_acme(ctx, two_factor=False)
    ann = password_only(ctx, "ann")
    cory = password_only(ctx, "cory")

    admin.set_two_factor(ctx, boss, "acme", True)

    with pytest.raises(NotSignedIn):
        signin.current_user(ctx, ann)
    assert signin.current_user(ctx, boss).username == "boss"
    assert signin.current_user(ctx, cory).username == "cory", "customers keep sessions"


def test_reset_ends_the_targets_sessions(ctx, clock):
    boss = add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    result = signin.submit_code(
        ctx, code_challenge(ctx, "sam@acme.test"), code_at(secret, ctx.now())
    )
    assert signin.current_user(ctx, result.session).username == "sam@acme.test"

    admin.reset_enrollment(ctx, boss, "acme", "sam@acme.test", "stolen phone")

    with pytest.raises(NotSignedIn):
        signin.current_user(ctx, result.session)


def test_locked_account_gives_the_same_answer_for_any_password(ctx, clock):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    wrong = f"{(int(code_at(secret, ctx.now())) + 1) % 1_000_000:06d}"
    for _ in range(5):
        signin.submit_code(ctx, challenge, wrong)

    right = signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
    )
    guessed = signin.submit_password(ctx, "acme", "sam@acme.test", "a-wrong-guess")

    assert right.status == Status.LOCKED
    assert guessed.status == Status.LOCKED
    assert right.message == guessed.message


def test_lone_surrogates_never_crash_the_core(ctx):
    boss = add_acme(ctx, two_factor=False)

    result = signin.submit_password(ctx, "acme", SURROGATE, "pw")
    assert result.status == Status.REJECTED
    result = signin.submit_password(ctx, SURROGATE, "boss", "pw")
    assert result.status == Status.REJECTED
    result = signin.submit_password(ctx, "acme", "boss", SURROGATE)
    assert result.status == Status.REJECTED
    assert signin.submit_code(ctx, SURROGATE, "123456").status == Status.REJECTED
    with pytest.raises(NotSignedIn):
        signin.enrollment_offer(ctx, SURROGATE)
    with pytest.raises(NotSignedIn):
        signin.current_user(ctx, SURROGATE)
    signin.sign_out(ctx, SURROGATE)
    with pytest.raises(NotSignedIn):
        admin.set_two_factor(ctx, SURROGATE, "acme", True)
    with pytest.raises(InvalidValue):
        admin.add_user(ctx, "acme", SURROGATE, "Some-pass-1", "standard", boss)
    with pytest.raises(InvalidValue):
        admin.add_user(ctx, "acme", "newbie", SURROGATE, "standard", boss)
    with pytest.raises(PermissionDenied):
        admin.reset_enrollment(ctx, boss, "acme", SURROGATE)
    result = operators.sign_in_operator(ctx, SURROGATE, "pw", "123456")
    assert result.session is None


def test_action_with_a_forged_session_is_audited(ctx):
    add_acme(ctx, two_factor=False)
    with pytest.raises(NotSignedIn):
        admin.set_two_factor(ctx, "forged-token", "acme", True)
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.event == Event.ACTION_REJECTED)
        ).all()
    assert len(rows) == 1
    assert rows[0].actor_kind == "anonymous"
    assert rows[0].portal_slug == "acme"


@pytest.mark.sqlite_only
def test_database_files_are_private(ctx, tmp_path):
    add_acme(ctx)
    database = tmp_path / "twofa.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        companion = tmp_path / f"twofa.sqlite3{suffix}"
        if companion.exists():
            assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0, suffix


def run_twofa(tmp_path, *args, **environment):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TWOFA_DATABASE_URL", "TWOFA_SECRET_KEY")
    }
    env.update(TWOFA_DATA_DIR=str(tmp_path / "data"), **environment)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    "environment",
    [
        {"TWOFA_DATABASE_URL": "nonsense://"},
        {"TWOFA_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"},
        {"TWOFA_SECRET_KEY": "not-a-key"},
    ],
)
def test_start_up_failures_are_one_line(tmp_path, environment):
    done = run_twofa(tmp_path, "init-db", **environment)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bad_log_level_falls_back_with_a_warning(tmp_path):
    done = run_twofa(tmp_path, "init-db", TWOFA_LOG_LEVEL="LOUD")
    assert done.returncode == 0
    assert "not a log level" in done.stderr


def test_argument_errors_are_one_line(tmp_path):
    done = run_twofa(tmp_path, "settings", "acme", "--window", "9", "--as", "boss")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
