"""A process killed with SIGKILL in the middle of the switch, of enrollment
confirmations or of code checks leaves a consistent database, and the next start works.

tests/crash_worker.py repeats one operation and prints a line after each commit.
Each round releases a worker, kills it after a seeded random delay, opens the
database again as the next start would, and checks the stored state with SQL.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from core import admin, signin, totp
from core.context import open_context
from core.models import (
    AuditEvent,
    CodeThrottle,
    Enrollment,
    EnrollmentStatus,
    SecuritySettings,
    User,
)
from core.signin import LIVE_STATUSES, Status
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    SEEN,
    add_acme,
    code_at,
    enroll,
)

ROUNDS = 16
MAX_DELAY_SECONDS = 0.3
REPOSITORY = Path(__file__).resolve().parent.parent
SAM = "sam@acme.test"
WORKER_PASSWORD = "Worker-pass-4410"
SEEN.passwords.add(WORKER_PASSWORD)
ENROLLING_USERS = [f"clerk{number}" for number in range(4)]
# The application_name of the workers' PostgreSQL connections.
WORKER_APPLICATION = "twofa_crash_worker"
# The audit events that the worker prints: each printed operation recorded
# exactly one row of its event.
REPORTED_EVENTS = (
    "setting_changed",
    "enrollment_confirmed",
    "enrollment_reset",
    "code_accepted",
    "code_rejected",
)
ACCEPTING_EVENTS = ("code_accepted", "enrollment_confirmed")


class Worker:
    """One forked worker: released with a job, killed after a delay."""

    def __init__(self, pid: int, output: Path, errors: Path) -> None:
        self.pid = pid
        self.output = output
        self.errors = errors
        self.status: int | None = None

    def lines(self) -> list[str]:
        # A line without its newline was cut by the kill: it reports no commit.
        return self.output.read_text().split("\n")[:-1]

    def reported(self) -> Counter:
        """Count the committed operations the worker printed, by audit event."""
        return Counter(line.split()[0] for line in self.lines()[1:])

    def failure(self, problem: str) -> str:
        return (
            f"worker {self.pid} {problem}: exit status {self.status}, "
            f"stderr: {self.errors.read_text()[-2000:]!r}"
        )


class WorkerServer:
    """The crash_worker process, which forks one worker per job."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs = 0
        self.running: Worker | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY,
        )

    def start(self, job: dict) -> Worker:
        """Fork a worker for ``job`` and wait until it has opened the database."""
        self.jobs += 1
        output = self.folder / f"worker-{self.jobs}.out"
        errors = self.folder / f"worker-{self.jobs}.err"
        job = {**job, "output": str(output), "errors": str(errors)}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        started = self.process.stdout.readline().split()
        assert started[:1] == ["started"], f"crash_worker printed {started}"
        worker = Worker(int(started[1]), output, errors)
        self.running = worker

        deadline = time.monotonic() + 60
        while not (output.exists() and worker.lines()):
            if time.monotonic() > deadline:
                self.kill(worker)
                pytest.fail(worker.failure("never became ready"))
            time.sleep(0.002)
        assert worker.lines()[0] == "ready", worker.failure("printed something else")
        return worker

    def kill(self, worker: Worker) -> None:
        """Kill the worker with SIGKILL and wait until the server reaps it."""
        # A worker that already ended is not found. Its status below shows how.
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        ended = self.process.stdout.readline().split()
        assert ended[:2] == ["ended", str(worker.pid)], f"crash_worker printed {ended}"
        worker.status = int(ended[2])
        self.running = None

    def close(self) -> None:
        if self.running is not None and self.process.poll() is None:
            self.kill(self.running)
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "twofa.key"


@pytest.fixture
def worker_server(tmp_path):
    server = WorkerServer(tmp_path)
    yield server
    server.close()


def worker_url(db_url: str) -> str:
    """Return the URL for the workers, which on PostgreSQL names their connections."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        url = url.update_query_dict({"application_name": WORKER_APPLICATION})
    return url.render_as_string(hide_password=False)


def wait_for_server_side_end(ctx) -> None:
    """Wait until PostgreSQL has ended the sessions of a killed worker.

    A server process finishes the statement in progress, even a COMMIT, before
    it detects that its client disconnected, so earlier checks could miss that commit.
    """
    if ctx.engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + 30
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = :name"
    )
    while True:
        with ctx.engine.connect() as connection:
            left = connection.scalar(query, {"name": WORKER_APPLICATION})
        if not left:
            return
        assert time.monotonic() < deadline, f"{left} worker session(s) never ended"
        time.sleep(0.01)


def audit_counts(ctx) -> Counter:
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(AuditEvent.event, func.count()).group_by(AuditEvent.event)
        ).all()
    return Counter(dict(rows))


def next_start(ctx) -> int:
    """Return a time after every stored event and every accepted time step."""
    with Session(ctx.engine) as session:
        latest_event = session.exec(select(func.max(AuditEvent.at))).one()
        latest_step = session.exec(
            select(func.coalesce(func.max(Enrollment.last_step), -1))
        ).one()
    return max(latest_event + 1, (latest_step + 1) * PERIOD)


def check_consistency(ctx) -> None:
    """Assert the invariants that every committed transaction keeps."""
    with Session(ctx.engine) as session:
        settings = {s.portal_id: s for s in session.exec(select(SecuritySettings))}
        enrollments = list(session.exec(select(Enrollment)))
        usernames = dict(session.exec(select(User.id, User.username)).all())
        events = list(session.exec(select(AuditEvent).order_by(AuditEvent.id)))

    for enrollment in enrollments:
        portal = settings[enrollment.portal_id]
        where = f"enrollment {enrollment.id} ({enrollment.status})"
        if enrollment.status in LIVE_STATUSES:
            # Turning the switch off revokes every enrollment of the portal at once.
            assert portal.two_factor_enabled, f"{where} outlived the switch"
            assert enrollment.generation == portal.generation, where
            assert enrollment.ended_at is None, where
        else:
            assert enrollment.ended_at is not None, where
        assert enrollment.secret_encrypted, f"{where} has no secret"
        secret = ctx.box.decrypt(enrollment.secret_encrypted)
        assert len(secret) == 20, f"{where}: the secret is not 160 bits"
        if enrollment.status == EnrollmentStatus.ACTIVE:
            assert enrollment.confirmed_at is not None, where
            assert enrollment.last_step >= 0, where
        if enrollment.status == EnrollmentStatus.PENDING:
            assert enrollment.confirmed_at is None, where
            assert enrollment.last_step == -1, where

    def count(event, **fields):
        return sum(
            1
            for row in events
            if row.event == event
            and all(getattr(row, name) == value for name, value in fields.items())
        )

    # Every stored enrollment was started, and every confirmation recorded, in
    # the same transaction as its audit row.
    assert len(enrollments) == count("enrollment_started")
    confirmed = [e for e in enrollments if e.confirmed_at is not None]
    assert len(confirmed) == count("enrollment_confirmed")
    for enrollment in confirmed:
        username = usernames[enrollment.user_id]
        assert count(
            "enrollment_confirmed", target=username, at=enrollment.confirmed_at
        ), f"no audit row for the confirmation of enrollment {enrollment.id}"

    # Each revocation came from a switch-off or a reset, which audits its count.
    revoked = sum(e.status == EnrollmentStatus.REVOKED for e in enrollments)
    audited_revocations = sum(
        json.loads(row.detail or "{}").get("revoked_enrollments", 0)
        for row in events
        if row.event in ("setting_changed", "enrollment_reset")
    )
    assert revoked == audited_revocations

    # Each switch-on raised the generation once, and the newest switch row
    # matches the stored setting.
    for portal_id, portal in settings.items():
        switches = [
            row
            for row in events
            if row.event == "setting_changed"
            and row.portal_id == portal_id
            and row.reason in ("two-factor on", "two-factor off")
        ]
        turned_on = [row for row in switches if row.reason == "two-factor on"]
        assert len(turned_on) == portal.generation
        if switches:
            newest = switches[-1]
            expected = (
                "two-factor on" if portal.two_factor_enabled else "two-factor off"
            )
            assert newest.reason == expected
            assert json.loads(newest.detail)["generation"] == portal.generation

    # The failure count of each user follows from the audit rows: a wrong code
    # stores the new count, an accepted code, a reset or a switch-off clears it.
    with Session(ctx.engine) as session:
        throttles = dict(
            session.exec(select(CodeThrottle.user_id, CodeThrottle.failures)).all()
        )
        portals_of_users = dict(session.exec(select(User.id, User.portal_id)).all())
    for user_id, failures in throttles.items():
        username = usernames[user_id]
        expected = 0
        for row in events:
            if row.event == "setting_changed" and row.reason == "two-factor off":
                if row.portal_id == portals_of_users[user_id]:
                    expected = 0
                continue
            if row.target != username or row.portal_id != portals_of_users[user_id]:
                continue
            if row.event in (*ACCEPTING_EVENTS, "enrollment_reset"):
                expected = 0
            elif row.event in ("code_rejected", "replay_rejected"):
                expected = json.loads(row.detail or "{}").get("failures", expected)
        assert failures == expected, f"failure count of {username}"

    # The last accepted step of an enrollment is the newest step that an audit
    # row of its user accepted while it was live. A user has one live
    # enrollment at a time, and the operations here never share a second.
    for enrollment in enrollments:
        if enrollment.last_step < 0:
            continue
        username = usernames[enrollment.user_id]
        ended_at = enrollment.ended_at if enrollment.ended_at is not None else 2**62
        accepted_steps = [
            row.at // PERIOD + json.loads(row.detail)["offset"]
            for row in events
            if row.event in ACCEPTING_EVENTS
            and row.target == username
            and enrollment.created_at <= row.at <= ended_at
        ]
        assert accepted_steps, f"no accepted code audited for {username}"
        assert enrollment.last_step == max(accepted_steps), username


def check_database_files(ctx) -> None:
    if ctx.engine.dialect.name != "sqlite":
        return
    with ctx.engine.connect() as connection:
        assert connection.scalar(text("PRAGMA integrity_check")) == "ok"


def sign_in(ctx, username, password):
    """Sign a user in, enrolling them if needed, and return the session token."""
    result = signin.submit_password(ctx, "acme", username, password)
    if result.status == Status.ENROLLMENT_REQUIRED:
        offer = signin.enrollment_offer(ctx, result.challenge)
        secret = pyotp.parse_uri(offer.uri).secret
        SEEN.add_secret(secret)
        result = signin.submit_code(ctx, result.challenge, code_at(secret, ctx.now()))
    elif result.status == Status.CODE_REQUIRED:
        with Session(ctx.engine) as session:
            enrollment = session.exec(
                select(Enrollment)
                .join(User)
                .where(
                    User.username == username,
                    Enrollment.status == EnrollmentStatus.ACTIVE,
                )
            ).one()
        secret = totp.encode_secret(ctx.box.decrypt(enrollment.secret_encrypted))
        SEEN.add_secret(secret)
        result = signin.submit_code(ctx, result.challenge, code_at(secret, ctx.now()))
    assert result.status == Status.SIGNED_IN, (username, result)
    assert signin.current_user(ctx, result.session).username == username
    return result.session


def prepare_switch(ctx):
    """Portal acme with the switch off and a Master Admin session that outlives it."""
    session = add_acme(ctx, two_factor=False)
    return {"mode": "switch", "session": session}


def prepare_enroll(ctx):
    """Portal acme with the switch on, clerks to enroll, and a Master Admin session."""
    session = add_acme(ctx, two_factor=True)
    for username in ENROLLING_USERS:
        admin.add_user(ctx, "acme", username, WORKER_PASSWORD, "standard", session)
    return {
        "mode": "enroll",
        "session": session,
        "users": ENROLLING_USERS,
        "password": WORKER_PASSWORD,
    }


def prepare_verify(ctx):
    """Portal acme with the switch on and Sam and Ann enrolled."""
    add_acme(ctx, two_factor=True)
    secrets = {username: enroll(ctx, username) for username in (SAM, "ann")}
    return {"mode": "verify", "secrets": secrets}


PREPARE = {"switch": prepare_switch, "enroll": prepare_enroll, "verify": prepare_verify}
# The user the test signs in after each kill, for each mode.
SIGNED_IN_AFTER_KILL = {"switch": "rita", "enroll": "ann", "verify": SAM}


@pytest.mark.parametrize("mode", ["switch", "enroll", "verify"])
def test_kill_leaves_database_consistent(
    mode, db_url, clock, key_file, worker_server, ctx
):
    job = PREPARE[mode](ctx)
    job.update(url=worker_url(db_url), key_file=str(key_file))
    seeded = random.Random(f"{mode}-9")
    rounds_with_commits = 0

    for round_number in range(ROUNDS):
        context = f"round {round_number}"
        before = audit_counts(ctx)
        worker = worker_server.start({**job, "start": next_start(ctx)})
        time.sleep(seeded.uniform(0, MAX_DELAY_SECONDS))
        worker_server.kill(worker)
        # Any other status means the worker stopped by itself before the kill.
        assert worker.status == -signal.SIGKILL, worker.failure("was not killed")
        reported = worker.reported()
        rounds_with_commits += bool(reported)
        wait_for_server_side_end(ctx)

        restarted = open_context(
            db_url, clock=clock, key_file=key_file, fast_hashing=True
        )
        try:
            check_database_files(restarted)
            check_consistency(restarted)
            # No committed change lost its audit row, and each kill cut at most
            # one commit before its line was printed.
            added = audit_counts(restarted) - before
            for event in REPORTED_EVENTS:
                assert reported[event] <= added[event] <= reported[event] + 1, (
                    context,
                    event,
                    reported,
                    added,
                )
            clock.set(next_start(restarted))
            username = SIGNED_IN_AFTER_KILL[mode]
            session = sign_in(restarted, username, PASSWORDS[username])
            signin.sign_out(restarted, session)
        finally:
            restarted.close()

    # Enough kills landed after a commit; the others hit the worker before
    # its first one, which a slow machine makes more likely.
    assert rounds_with_commits >= ROUNDS // 4, rounds_with_commits
