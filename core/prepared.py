"""Statements compiled once per dialect and run straight on the DB-API cursor.

The code check is the hot path of the product. Running a SQLAlchemy statement
through a Connection costs tens of microseconds of Python per statement, about
as much as the SQLite work itself, so the few statements of a code check and
the audit INSERT are compiled once and executed on the driver's cursor, inside
whatever transaction the caller holds. Values are passed to the driver as is:
these statements take only integers, text and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.expression import Executable


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None  # bind names in order, for positional paramstyles
    defaults: dict[str, Any]  # every bind, with the values fixed in the statement


class Prepared:
    """A Core statement, compiled for each dialect on first use."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        # Every bind by its compiled name; those without a fixed value are None
        # here and come from the caller's parameters.
        defaults = dict(compiled.construct_params(_check=False))
        positions = tuple(compiled.positiontup) if compiled.positional else None
        found = _Compiled(compiled.string, positions, defaults)
        self._by_dialect[dialect.name] = found
        return found

    def execute(self, raw: Raw, params: dict[str, Any]) -> Any:
        """Execute on the driver's cursor and return the cursor."""
        compiled = self._by_dialect.get(raw.dialect.name) or self._compile(raw.dialect)
        values = {**compiled.defaults, **params}
        cursor = raw.dbapi_connection.cursor()
        if compiled.positions is None:
            cursor.execute(compiled.sql, values)
        else:
            cursor.execute(
                compiled.sql, tuple(values[name] for name in compiled.positions)
            )
        return cursor


@dataclass(frozen=True)
class Raw:
    """A DB-API connection inside a transaction, with the dialect that compiles for it."""

    dbapi_connection: Any
    dialect: Dialect

    @classmethod
    def of(cls, connection: Connection | Raw) -> Raw:
        """Return the DB-API side of a SQLAlchemy Connection, in the same transaction."""
        if isinstance(connection, Raw):
            return connection
        return cls(connection.connection, connection.dialect)
