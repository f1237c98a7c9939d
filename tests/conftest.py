import logging
import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from core.clock import ManualClock
from core.context import open_context
from tests.helpers import SEEN, START, contains_code


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


COLLECTOR = _Collector()


@pytest.fixture(scope="session", autouse=True)
def scan_every_log_line():
    """Collect every log line of the run and fail at the end if one holds a secret,
    a code or a password that a test handled."""
    root = logging.getLogger()
    previous = root.level
    root.addHandler(COLLECTOR)
    root.setLevel(logging.DEBUG)
    # SQL echo stays off, as in production.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    yield COLLECTOR
    root.removeHandler(COLLECTOR)
    root.setLevel(previous)

    text = "\n".join(COLLECTOR.lines).encode("utf-8", "replace")
    leaks = [needle for needle in SEEN.needles() if needle in text]
    assert not leaks, f"{len(leaks)} secret(s) or password(s) appear in the logs"
    codes = [code for code in SEEN.codes if contains_code(text, code)]
    assert not codes, f"{len(codes)} code(s) appear in the logs"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


POSTGRES_VARIABLE = "TWOFA_TEST_POSTGRES_URL"
POSTGRES_SKIP = (
    f"{POSTGRES_VARIABLE} is not set: start a throwaway cluster with "
    '`eval "$(scripts/test-postgres.sh start /tmp/twofa-pg)"` (.ci/run does this)'
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only: the test checks SQLite files or pragmas"
    )


@pytest.fixture(scope="session")
def postgres_admin():
    """An engine on the maintenance database of the test cluster, or None."""
    url = os.environ.get(POSTGRES_VARIABLE)
    if not url:
        yield None
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, postgres_admin):
    """A fresh, empty database: an SQLite file, or a new database on the test cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'twofa.sqlite3'}"
        return
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("checks SQLite files or pragmas")
    if postgres_admin is None:
        pytest.skip(POSTGRES_SKIP)
    name = f"twofa_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def ctx(db_url, clock, tmp_path):
    context = open_context(
        db_url, clock=clock, key_file=tmp_path / "twofa.key", fast_hashing=True
    )
    yield context
    context.close()
