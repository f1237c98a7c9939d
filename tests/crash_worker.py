"""Workers for tests/test_crashes.py to kill: each repeats one operation and prints
a line after each commit, until it is killed.

Run ``python -m tests.crash_worker`` from the repository root. The process
imports everything once and then reads jobs, one JSON line each, from standard
input:

    {"mode": "switch" | "enroll" | "verify", "url": ..., "key_file": ...,
     "start": Unix seconds for the ManualClock, "output": file for the lines,
     "errors": file for standard error, "session": the Master Admin's session
     token, "users": [usernames], "password": the users' password,
     "secrets": {username: base32 secret}}

For each job it forks a worker, prints ``started PID``, waits for the worker
to end, and prints ``ended PID STATUS``, where STATUS is the exit status or
the negative number of the signal that killed it. Forking after the imports
lets each worker start in milliseconds instead of a second or more. It exits
at the end of its input.

A worker opens the database with open_context and writes ``ready`` to its
output file. Each later line is ``EVENT TARGET``: the audit event that the
committed operation recorded exactly once, and the user it concerned, or
``on`` and ``off`` for the switch. A worker exits with status 3 when an
operation returns something unexpected, with the reason in its errors file,
and with status 4 after MAX_SECONDS, so that a worker whose test died does
not run forever.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import pyotp
from sqlmodel import Session, select

from core import admin, signin, verification
from core.clock import ManualClock
from core.context import Context, open_context
from core.models import Enrollment, EnrollmentStatus, User
from core.signin import Status
from tests.helpers import PASSWORDS, PERIOD

MAX_SECONDS = 60
PORTAL = "acme"


class UnexpectedResult(Exception):
    """An operation returned something that the loop does not expect."""


def report(event: str, username: str) -> None:
    print(f"{event} {username}", flush=True)


def expect(result: signin.SignInResult, status: Status, step: str) -> None:
    if result.status != status:
        raise UnexpectedResult(f"{step}: expected {status}, got {result}")


def confirm_enrollment(ctx: Context, username: str, password: str) -> None:
    """Pass the password step of a user who must enroll and confirm with a first code."""
    ctx.clock.advance(1)
    started = signin.submit_password(ctx, PORTAL, username, password)
    expect(started, Status.ENROLLMENT_REQUIRED, f"password step of {username}")
    offer = signin.enrollment_offer(ctx, started.challenge)
    secret = pyotp.parse_uri(offer.uri).secret
    ctx.clock.advance(1)
    confirmed = signin.submit_code(
        ctx, started.challenge, pyotp.TOTP(secret).at(ctx.now())
    )
    expect(confirmed, Status.SIGNED_IN, f"enrollment of {username}")
    report("enrollment_confirmed", username)


def run_switch(ctx: Context, job: dict) -> None:
    """Turn two-factor on, enroll Ann, leave Sam pending, and turn it off again."""
    session = job["session"]
    enabled = admin.portal_settings(ctx, PORTAL).two_factor_enabled
    while True:
        if enabled:
            ctx.clock.advance(1)
            admin.set_two_factor(ctx, session, PORTAL, False)
            report("setting_changed", "off")
        ctx.clock.advance(1)
        admin.set_two_factor(ctx, session, PORTAL, True)
        report("setting_changed", "on")
        enabled = True
        confirm_enrollment(ctx, "ann", PASSWORDS["ann"])
        ctx.clock.advance(1)
        pending = signin.submit_password(
            ctx, PORTAL, "sam@acme.test", PASSWORDS["sam@acme.test"]
        )
        expect(pending, Status.ENROLLMENT_REQUIRED, "password step of Sam")


def run_enroll(ctx: Context, job: dict) -> None:
    """Enroll each user in turn and have the Master Admin reset them after."""
    session = job["session"]
    users = job["users"]
    index = 0
    while True:
        username = users[index % len(users)]
        index += 1
        # A worker killed between the confirmation and the reset leaves the
        # user enrolled: the reset below covers that case.
        if not enrolled(ctx, username):
            confirm_enrollment(ctx, username, job["password"])
        ctx.clock.advance(1)
        admin.reset_enrollment(ctx, session, PORTAL, username, reason="crash test")
        report("enrollment_reset", username)


def enrolled(ctx: Context, username: str) -> bool:
    with Session(ctx.reader) as session:
        active = session.exec(
            select(Enrollment.id)
            .join(User)
            .where(
                User.username == username,
                Enrollment.status == EnrollmentStatus.ACTIVE,
            )
        ).first()
    return active is not None


def run_verify(ctx: Context, job: dict) -> None:
    """Check Sam's codes with verify_for_user and sign Ann in, one time step apart.

    Every third step Sam also sends a wrong code first, so the failure count
    moves between 0 and 1 and code entry never locks.
    """
    sam = pyotp.TOTP(job["secrets"]["sam@acme.test"])
    ann = pyotp.TOTP(job["secrets"]["ann"])
    sam_id = user_id_of(ctx, "sam@acme.test")
    iteration = 0
    while True:
        iteration += 1
        ctx.clock.advance(PERIOD)
        now = ctx.now()
        if iteration % 3 == 0:
            nearby = {sam.at(now + offset * PERIOD) for offset in range(-4, 5)}
            wrong = next(
                f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in nearby
            )
            verdict = verification.verify_for_user(ctx, sam_id, wrong)
            if verdict.accepted:
                raise UnexpectedResult("a wrong code of Sam was accepted")
            report("code_rejected", "sam@acme.test")
        verdict = verification.verify_for_user(ctx, sam_id, sam.at(now))
        if not verdict.accepted:
            raise UnexpectedResult(f"Sam's code was rejected: {verdict}")
        report("code_accepted", "sam@acme.test")

        challenge = signin.submit_password(ctx, PORTAL, "ann", PASSWORDS["ann"])
        expect(challenge, Status.CODE_REQUIRED, "password step of Ann")
        result = signin.submit_code(ctx, challenge.challenge, ann.at(now))
        expect(result, Status.SIGNED_IN, "code step of Ann")
        report("code_accepted", "ann")


def user_id_of(ctx: Context, username: str) -> int:
    with Session(ctx.reader) as session:
        return session.exec(select(User.id).where(User.username == username)).one()


MODES = {"switch": run_switch, "enroll": run_enroll, "verify": run_verify}


def stop_after_limit() -> None:
    time.sleep(MAX_SECONDS)
    print(
        f"crash_worker: still running after {MAX_SECONDS} s; stopping",
        file=sys.stderr,
        flush=True,
    )
    os._exit(4)


def redirect(descriptor: int, path: str) -> None:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(target, descriptor)
    os.close(target)


def run_worker(job: dict) -> int:
    """Run one job in the forked worker and return its exit status."""
    redirect(sys.stdout.fileno(), job["output"])
    redirect(sys.stderr.fileno(), job["errors"])
    # Standard input stays with the parent, which reads the next jobs from it.
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    threading.Thread(target=stop_after_limit, daemon=True).start()
    ctx = open_context(
        job["url"],
        clock=ManualClock(job["start"]),
        key_file=Path(job["key_file"]),
        fast_hashing=True,
    )
    print("ready", flush=True)
    try:
        MODES[job["mode"]](ctx, job)
    except UnexpectedResult as error:
        print(f"crash_worker: {error}", file=sys.stderr, flush=True)
        return 3
    return 0  # not reached: the loops run until the process is killed


def main() -> int:
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = run_worker(job)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                # Never return into the parent's loop or run its exit handlers.
                os._exit(status)
        print(f"started {pid}", flush=True)
        _, wait_status = os.waitpid(pid, 0)
        print(f"ended {pid} {os.waitstatus_to_exitcode(wait_status)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
