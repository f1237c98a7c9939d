"""Storage: migrations match the models, secrets are encrypted, the key file is guarded,
and no secret, code or password reaches the database file or the audit log."""

import os
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlmodel import Session, SQLModel, select

from core import admin, signin, support
from core.clock import ManualClock
from core.context import open_context
from core.errors import KeyProblem
from core.models import AuditEvent
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    SEEN,
    START,
    add_acme,
    add_operator,
    code_at,
    code_challenge,
    contains_code,
    enroll,
    operator_session,
)


def test_migrations_match_the_models(ctx):
    with ctx.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), SQLModel.metadata
        )
    assert differences == []


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_with_full_sync(ctx):
    with ctx.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_key_file_is_created_private(ctx, tmp_path):
    key_file = tmp_path / "twofa.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_missing_key_with_stored_secrets_stops_the_start(ctx, db_url, tmp_path, clock):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    ctx.engine.dispose()
    key_file = tmp_path / "twofa.key"
    key_file.unlink()

    with pytest.raises(KeyProblem, match="missing"):
        open_context(db_url, clock=clock, key_file=key_file)
    assert not key_file.exists(), "a new key was written over existing data"


def test_wrong_key_stops_the_start(ctx, db_url, clock):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    with pytest.raises(KeyProblem, match="cannot be decrypted"):
        open_context(db_url, clock=clock, key=Fernet.generate_key())


def test_malformed_key_stops_the_start(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("TWOFA_SECRET_KEY", "not-a-fernet-key")
    with pytest.raises(KeyProblem, match="malformed"):
        open_context(db_url, key_file=tmp_path / "twofa.key")


def test_key_from_the_environment_writes_no_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TWOFA_SECRET_KEY", Fernet.generate_key().decode())
    context = open_context(f"sqlite:///{tmp_path / 'db.sqlite3'}", fast_hashing=True)
    context.engine.dispose()
    assert not (tmp_path / "twofa.key").exists()


def run_full_flow(ctx, clock):
    """Exercise every path that touches a secret, a code or a password."""
    boss = add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    enroll(ctx, "ann")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")
    code = code_at(secret, ctx.now())
    signin.submit_code(ctx, challenge, code_at(secret, ctx.now() + 10 * PERIOD))
    signin.submit_code(ctx, challenge, code)
    challenge = code_challenge(ctx, "sam@acme.test")
    signin.submit_code(ctx, challenge, code)  # a replay
    signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["ann"]
    )  # wrong password
    signin.submit_password(
        ctx, "acme", PASSWORDS["sam@acme.test"], "x"
    )  # password as name
    admin.reset_enrollment(ctx, boss, "acme", "ann", "new phone")
    admin.set_two_factor(ctx, boss, "acme", False)
    admin.set_two_factor(ctx, boss, "acme", True)
    enroll(ctx, "sam@acme.test")
    operator = operator_session(ctx, add_operator(ctx))
    checklist = support.Checklist(requester_matches=True, called_back=True)
    support.support_reset(ctx, operator, "SUP-9", "acme", "sam@acme.test", checklist)


@pytest.mark.sqlite_only
def test_database_file_and_audit_hold_no_secret(ctx, clock, tmp_path):
    run_full_flow(ctx, clock)
    with Session(ctx.engine) as session:
        audit_text = "\n".join(
            " ".join(str(value) for value in row.model_dump().values())
            for row in session.exec(select(AuditEvent))
        ).encode()
    ctx.engine.dispose()

    raw = b"".join(
        path.read_bytes()
        for path in tmp_path.iterdir()
        if path.name.startswith("twofa.sqlite3")
    )
    assert len(raw) > 0
    needles = SEEN.needles()
    assert needles
    for needle in needles:
        assert needle not in raw, "a secret or password is in the database file"
        assert needle not in audit_text, "a secret or password is in the audit log"
    for code in SEEN.codes:
        assert not contains_code(audit_text, code), "a code is in the audit log"


def test_database_file_holds_no_code(tmp_path):
    """Codes are never stored. Token hashes are random hex, so a six-digit run can
    appear in one by chance (about 1 in 10^4 per run); this test therefore checks
    the text columns that could hold a code, not the raw bytes."""
    clock = ManualClock(START)
    context = open_context(
        f"sqlite:///{tmp_path / 'twofa.sqlite3'}", clock=clock, fast_hashing=True
    )
    run_full_flow(context, clock)
    with context.engine.connect() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text("SELECT name FROM sqlite_master WHERE type='table'")
            )
        ]
        values = []
        for table in tables:
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                values += [str(value) for value in row if isinstance(value, str | int)]
    context.engine.dispose()
    for code in SEEN.codes:
        assert code not in values, f"a code is stored as a value ({len(values)} values)"
    assert os.path.exists(tmp_path / "twofa.sqlite3")


def test_audit_csv_export_holds_no_secret(ctx, clock):
    """The audit log as the dashboard exports it (a DataFrame written as CSV)."""
    import pandas as pd

    run_full_flow(ctx, clock)
    with Session(ctx.engine) as session:
        rows = [row.model_dump() for row in session.exec(select(AuditEvent))]
    exported = pd.DataFrame(rows).to_csv(index=False).encode()

    assert b"support_reset" in exported
    for needle in SEEN.needles():
        assert needle not in exported, "a secret or password is in the CSV export"
    for code in SEEN.codes:
        assert not contains_code(exported, code), "a code is in the CSV export"
