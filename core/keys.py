"""Rotation of the key that encrypts TOTP secrets.

With a key file, ``rotate_keys`` writes a new key in front of the old one,
re-encrypts every stored secret under the new key while the old one still
decrypts, and only then drops the old key from the file. An interrupted
rotation leaves both keys in the file, and the next run finishes it.

With ``TWOFA_SECRET_KEY``, the operator lists the new key first and the old
one after a comma; ``rotate_keys`` re-encrypts, and then the old key can be
removed from the variable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select, update

from core import db
from core.context import Context, default_key_file, open_context
from core.encryption import KEY_VARIABLE, split_keys, write_key_file
from core.errors import KeyProblem
from core.models import Enrollment, SupportOperator

log = logging.getLogger(__name__)

BATCH_ROWS = 500


@dataclass(frozen=True)
class RotationResult:
    rotated: int  # secrets re-encrypted
    from_environment: bool
    key_file: Path | None


def rotate_keys(url: str | None = None, key_file: Path | None = None) -> RotationResult:
    """Re-encrypt every stored secret under a new key, keeping the old key until done."""
    url = url or db.database_url()
    if os.environ.get(KEY_VARIABLE):
        keys = split_keys(os.environ[KEY_VARIABLE])
        if len(keys) < 2:
            raise KeyProblem(
                f"{KEY_VARIABLE} contains only one key: set it to NEW_KEY,OLD_KEY (new key "
                "first) and run the rotation again"
            )
        ctx = open_context(url)
        try:
            rotated = reencrypt_all(ctx)
        finally:
            ctx.close()
        return RotationResult(rotated, True, None)

    key_file = key_file or default_key_file(url)
    if not key_file.exists():
        raise KeyProblem(f"the key file {key_file} does not exist; nothing to rotate")
    # Check that the keys read the stored secrets before anything is written.
    open_context(url, key_file=key_file).close()
    keys = split_keys(key_file.read_bytes())
    if len(keys) == 1:
        keys = [Fernet.generate_key(), *keys]
        write_key_file(key_file, keys)
        log.info("new key written in front of the old one in %s", key_file)
    else:
        log.info("finishing an interrupted rotation in %s", key_file)

    ctx = open_context(url, key_file=key_file)
    try:
        rotated = reencrypt_all(ctx)
    finally:
        ctx.close()
    write_key_file(key_file, keys[:1])
    log.info("rotation done: %d secrets re-encrypted; old keys removed", rotated)
    return RotationResult(rotated, False, key_file)


def reencrypt_all(ctx: Context) -> int:
    """Re-encrypt every enrollment and operator secret under the first key."""
    total = 0
    for table in (Enrollment, SupportOperator):
        last_id = 0
        while True:
            with ctx.engine.begin() as connection:
                rows = connection.execute(
                    select(table.id, table.secret_encrypted)
                    .where(table.id > last_id, table.secret_encrypted.is_not(None))
                    .order_by(table.id)
                    .limit(BATCH_ROWS)
                ).all()
                for row_id, token in rows:
                    # Conditional, so a secret replaced meanwhile is left alone.
                    connection.execute(
                        update(table)
                        .where(table.id == row_id, table.secret_encrypted == token)
                        .values(secret_encrypted=ctx.box.rotate(token))
                    )
            if not rows:
                break
            total += len(rows)
            last_id = rows[-1][0]
            log.info("re-encrypted %d secrets so far", total)
    return total
