"""Engines, connection settings and schema migrations."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from core.prepared import Raw

log = logging.getLogger(__name__)

DATABASE_URL_VARIABLE = "TWOFA_DATABASE_URL"
DATA_DIR_VARIABLE = "TWOFA_DATA_DIR"
DATABASE_FILE_NAME = "twofa.sqlite3"
MIGRATIONS = Path(__file__).with_name("migrations")
# Execution option for engines whose transactions only read: on SQLite they
# begin without taking the write lock.
READ_ONLY_OPTION = "twofa_read_only"


def data_dir() -> Path:
    """Return the data folder: ``TWOFA_DATA_DIR``, or ``data`` under the current folder."""
    return Path(os.environ.get(DATA_DIR_VARIABLE, "data")).resolve()


def database_url() -> str:
    """Return ``TWOFA_DATABASE_URL``, or the SQLite file in the data folder."""
    url = os.environ.get(DATABASE_URL_VARIABLE)
    if url:
        return url
    return f"sqlite:///{data_dir() / DATABASE_FILE_NAME}"


def sqlite_path(url: str) -> Path | None:
    """Return the file of an SQLite URL, or None for another database or in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _configure_sqlite(engine: Engine, in_memory: bool) -> None:
    """Use WAL with full fsync, enforce foreign keys, and take the write lock at BEGIN.

    BEGIN IMMEDIATE makes two writers queue up instead of both reading and
    then failing to upgrade their lock, which is how SQLite reports a deadlock.
    Transactions on an engine with READ_ONLY_OPTION begin deferred instead.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        # Straight to the driver: this runs before every transaction.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.connection.dbapi_connection.execute("BEGIN")
        else:
            connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE")


def create_database_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (default: ``database_url()``), with SQL echo off."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    path = sqlite_path(url)
    if path is None:
        # One shared connection, so every session sees the same in-memory database.
        engine = create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        _configure_sqlite(engine, in_memory=True)
        return engine

    _create_private_file(path)
    engine = create_engine(
        url, connect_args={"timeout": 10, "check_same_thread": False}
    )
    _configure_sqlite(engine, in_memory=False)
    return engine


def begin_write(dbapi_connection, dialect: Dialect) -> None:
    """Begin a write transaction on a DB-API connection taken from the pool.

    SQLite needs BEGIN IMMEDIATE (see _configure_sqlite); other drivers begin
    implicitly at the first statement.
    """
    if dialect.name == "sqlite":
        dbapi_connection.execute("BEGIN IMMEDIATE")


class PinnedConnections:
    """One DB-API connection per thread, taken out of the pool, for the code check.

    Checking a connection out of SQLAlchemy's pool and back in costs about a
    tenth of a committed code check, so the hot path keeps one per thread. A
    connection that raised is closed and replaced at the next use.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def _connection(self) -> Any:
        pooled = getattr(self._local, "pooled", None)
        if pooled is None:
            pooled = self._engine.raw_connection()
            pooled.detach()  # no longer counts against the pool's size
            self._local.pooled = pooled
            with self._lock:
                self._open.append(pooled)
        return pooled

    @contextlib.contextmanager
    def write(self) -> Iterator[Raw]:
        """Yield the thread's connection inside a write transaction, committed at the end."""
        pooled = self._connection()
        raw = Raw(pooled.dbapi_connection, self._engine.dialect)
        try:
            begin_write(raw.dbapi_connection, raw.dialect)
            yield raw
            raw.dbapi_connection.commit()
        except BaseException:
            self._discard(pooled)
            raise

    def _discard(self, pooled: Any) -> None:
        self._local.pooled = None
        with self._lock:
            if pooled in self._open:
                self._open.remove(pooled)
        try:
            pooled.dbapi_connection.rollback()
        except Exception:  # the connection may be broken; closing is all that is left
            log.warning("rollback failed on a discarded connection", exc_info=True)
        pooled.close()

    def close(self) -> None:
        """Close every pinned connection, of every thread."""
        with self._lock:
            pooled_connections, self._open = self._open, []
        for pooled in pooled_connections:
            pooled.close()


def read_only(engine: Engine) -> Engine:
    """Return a view of ``engine`` for transactions that only read; it shares the pool."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it.

    SQLite gives the -wal and -shm files the mode of the database file.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("schema upgraded on %s", engine.url.render_as_string(hide_password=True))
