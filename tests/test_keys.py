"""Key rotation: every secret moves to a new key, and the old key stays usable until done."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from core import keys, signin
from core.context import open_context
from core.encryption import split_keys, write_key_file
from core.errors import KeyProblem
from core.models import Enrollment, SupportOperator
from tests.helpers import (
    PERIOD,
    add_acme,
    add_operator,
    code_at,
    code_challenge,
    enroll,
    start_enrollment,
)


def stored_tokens(ctx):
    with Session(ctx.engine) as session:
        tokens = list(session.exec(select(Enrollment.secret_encrypted)))
        tokens += [
            token
            for token in session.exec(select(SupportOperator.secret_encrypted))
            if token is not None
        ]
    return tokens


@pytest.fixture
def populated(ctx, clock):
    """A portal with an active and a pending enrollment and one operator."""
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    start_enrollment(ctx, "ann")
    add_operator(ctx)
    return secret


def test_rotation_moves_every_secret_to_a_new_key(
    ctx, clock, db_url, tmp_path, populated
):
    key_file = tmp_path / "twofa.key"
    (old_key,) = split_keys(key_file.read_bytes())
    before = stored_tokens(ctx)
    ctx.close()

    result = keys.rotate_keys(db_url, key_file)

    assert result.rotated == len(before) == 3
    (new_key,) = split_keys(key_file.read_bytes())
    assert new_key != old_key
    with pytest.raises(KeyProblem):
        open_context(db_url, clock=clock, key=old_key)
    rotated = open_context(db_url, clock=clock, key=new_key, fast_hashing=True)
    after = stored_tokens(rotated)
    assert all(token not in before for token in after)
    for token in after:
        assert len(rotated.box.decrypt(token)) == 20

    clock.advance(10 * PERIOD)
    challenge = code_challenge(rotated, "sam@acme.test")
    result = signin.submit_code(rotated, challenge, code_at(populated, rotated.now()))
    assert result.status == signin.Status.SIGNED_IN
    rotated.close()


def test_interrupted_rotation_keeps_both_keys_and_finishes(
    ctx, clock, db_url, tmp_path, populated
):
    key_file = tmp_path / "twofa.key"
    (old_key,) = split_keys(key_file.read_bytes())
    ctx.close()
    new_key = Fernet.generate_key()
    # What a rotation leaves behind if it dies before re-encrypting anything.
    write_key_file(key_file, [new_key, old_key])

    halfway = open_context(db_url, clock=clock, key_file=key_file, fast_hashing=True)
    assert all(
        len(halfway.box.decrypt(token)) == 20 for token in stored_tokens(halfway)
    )
    halfway.close()

    keys.rotate_keys(db_url, key_file)

    assert split_keys(key_file.read_bytes()) == [new_key]
    done = open_context(db_url, clock=clock, key=new_key, fast_hashing=True)
    assert all(len(done.box.decrypt(token)) == 20 for token in stored_tokens(done))
    done.close()


def test_rotation_from_the_environment(ctx, clock, db_url, monkeypatch, populated):
    old_key = ctx.box.keys[0]
    ctx.close()
    new_key = Fernet.generate_key()
    monkeypatch.setenv("TWOFA_SECRET_KEY", f"{new_key.decode()},{old_key.decode()}")

    result = keys.rotate_keys(db_url)

    assert result.from_environment
    assert result.rotated == 3
    done = open_context(db_url, clock=clock, key=new_key, fast_hashing=True)
    assert all(len(done.box.decrypt(token)) == 20 for token in stored_tokens(done))
    done.close()


def test_rotation_needs_two_keys_in_the_environment(
    ctx, db_url, monkeypatch, populated
):
    monkeypatch.setenv("TWOFA_SECRET_KEY", ctx.box.keys[0].decode())
    ctx.close()
    with pytest.raises(KeyProblem, match="NEW_KEY,OLD_KEY"):
        keys.rotate_keys(db_url)


def test_rotation_with_a_wrong_key_changes_nothing(ctx, db_url, tmp_path, populated):
    key_file = tmp_path / "twofa.key"
    before = stored_tokens(ctx)
    ctx.close()
    write_key_file(key_file, [Fernet.generate_key()])
    written = key_file.read_bytes()

    with pytest.raises(KeyProblem):
        keys.rotate_keys(db_url, key_file)

    assert key_file.read_bytes() == written, "the key file was rewritten"
    restored = open_context(db_url, key=ctx.box.keys[0], fast_hashing=True)
    assert stored_tokens(restored) == before
    restored.close()


@pytest.mark.sqlite_only
def test_keys_rotate_command(ctx, tmp_path, populated):
    ctx.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    env["TWOFA_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "keys", "rotate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "3 secret(s) re-encrypted" in done.stdout
    assert len(split_keys((tmp_path / "twofa.key").read_bytes())) == 1
