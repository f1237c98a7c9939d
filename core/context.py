"""The context of every core call: the database, the secret key, the clock and the password hasher."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select

from core import db
from core.clock import Clock, SystemClock
from core.encryption import KEY_FILE_NAME, SecretBox, load_key
from core.models import Enrollment, SupportOperator
from core.passwords import make_hasher

log = logging.getLogger(__name__)


@dataclass
class Context:
    engine: Engine
    box: SecretBox
    clock: Clock = field(default_factory=SystemClock)
    hasher: PasswordHasher = field(default_factory=make_hasher)

    def now(self) -> int:
        return self.clock.now()

    @functools.cached_property
    def reader(self) -> Engine:
        """The engine for transactions that only read (no write lock on SQLite)."""
        return db.read_only(self.engine)

    @functools.cached_property
    def pinned(self) -> db.PinnedConnections:
        """Per-thread connections for the code check, outside the pool."""
        return db.PinnedConnections(self.engine)

    def close(self) -> None:
        """Close the pinned connections and every pooled connection."""
        if "pinned" in self.__dict__:
            self.pinned.close()
        self.engine.dispose()
        log.info(
            "core stopped on %s", self.engine.url.render_as_string(hide_password=True)
        )


def default_key_file(url: str) -> Path:
    """Return the key file beside an SQLite file, or in the data folder otherwise."""
    sqlite_file = db.sqlite_path(url)
    folder = sqlite_file.parent if sqlite_file else db.data_dir()
    return folder / KEY_FILE_NAME


def _count_secrets(engine: Engine) -> int:
    with engine.connect() as connection:
        enrollments = connection.scalar(select(func.count()).select_from(Enrollment))
        operators = connection.scalar(
            select(func.count())
            .select_from(SupportOperator)
            .where(SupportOperator.secret_encrypted.is_not(None))
        )
    return int(enrollments or 0) + int(operators or 0)


def _check_key(engine: Engine, box: SecretBox) -> None:
    """Decrypt one stored secret, so that a wrong key stops the start at once."""
    with engine.connect() as connection:
        token = connection.scalar(select(Enrollment.secret_encrypted).limit(1))
        if token is None:
            token = connection.scalar(
                select(SupportOperator.secret_encrypted)
                .where(SupportOperator.secret_encrypted.is_not(None))
                .limit(1)
            )
    if token is not None:
        box.decrypt(token)


def open_context(
    url: str | None = None,
    clock: Clock | None = None,
    key: bytes | str | None = None,
    key_file: Path | None = None,
    fast_hashing: bool = False,
) -> Context:
    """Connect, migrate the schema, load and check the key, and return a Context.

    Without ``key``, the key comes from ``TWOFA_SECRET_KEY`` or ``key_file``
    (default: beside the SQLite file, or in the data folder for other databases).
    """
    url = url or db.database_url()
    engine = db.create_database_engine(url)
    db.upgrade_schema(engine)

    try:
        if key is None:
            key_file = key_file or default_key_file(url)
            key = load_key(key_file, database_has_secrets=_count_secrets(engine) > 0)
        box = SecretBox(key)
        _check_key(engine, box)
    except BaseException:
        engine.dispose()
        raise
    log.info(
        "core started on %s with %d key(s)",
        engine.url.render_as_string(hide_password=True),
        len(box.keys),
    )

    return Context(
        engine=engine,
        box=box,
        clock=clock or SystemClock(),
        hasher=make_hasher(fast=fast_hashing),
    )
