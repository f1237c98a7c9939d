"""Engines, connection settings and schema migrations."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

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
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


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

    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": 10, "check_same_thread": False}
    )
    _configure_sqlite(engine, in_memory=False)
    return engine


def read_only(engine: Engine) -> Engine:
    """Return a view of ``engine`` for transactions that only read; it shares the pool."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("schema upgraded on %s", engine.url.render_as_string(hide_password=True))
