import logging

import pytest

from core.clock import ManualClock
from core.context import open_context
from tests.helpers import SEEN, START


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
    codes = [code for code in SEEN.codes if code.encode() in text]
    assert not codes, f"{len(codes)} code(s) appear in the logs"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'twofa.sqlite3'}"


@pytest.fixture
def ctx(db_url, clock):
    context = open_context(db_url, clock=clock, fast_hashing=True)
    yield context
    context.engine.dispose()
