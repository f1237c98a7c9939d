"""Measure one committed TOTP code verification: the core, django-otp and bare SQLite.

The core cases, the django-otp cases and the bare floor each write to their
own SQLite file in one temporary folder, in WAL mode with synchronous=FULL, so a verification has reached the disk (fsync) before
the timed call returns and survives a power loss. The cases take turns in
rounds, so a slow spell of the disk falls on all of them alike.

Every verification uses a fresh time step, because the clock moves one period
before each, and every one must be accepted: a rejected code ends the run with
an error with exit status 2. The exit status is 1 when the core misses a target.

Run ``python benchmarks/verify_code.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import types
from contextlib import closing
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from core import admin, audit, signin, totp
from core.clock import ManualClock
from core.context import Context, open_context
from core.models import Enrollment, EnrollmentStatus
from core.verification import verify_for_user

START_TIME = 1_700_000_000  # Unix seconds. Any fixed start gives the same work.
PERIOD = totp.DEFAULT_PERIOD
PORTAL_SLUG = "bench"
PORTAL_NAME = "Benchmark Billing"
USERNAME = "olga"
PASSWORD = "benchmark-password"

# The targets: the core at least 3 times django-otp's verifications per second,
# and at most 1.5 times the time of the bare SQLite writes.
MIN_SPEEDUP_OVER_DJANGO_OTP = 3.0
MAX_SLOWDOWN_OVER_FLOOR = 1.5

DEFAULT_OUTPUT = Path("artifacts/verify_code.json")


class BenchmarkFailure(RuntimeError):
    """A setup step or a timed verification did not do what the benchmark requires."""


@dataclass(frozen=True)
class Summary:
    """Timing statistics of one case, in microseconds per verification."""

    name: str
    description: str
    iterations: int
    accepted: int
    median_us: float
    p99_us: float
    mean_us: float
    per_second: float


@dataclass
class Case:
    """One way to verify a code. ``measure_once`` returns the timed nanoseconds of one call."""

    name: str
    description: str
    attempts: int = 0
    accepted: int = 0

    def measure_once(self) -> int:
        raise NotImplementedError

    def start_timing(self) -> None:
        """Forget the counts of the warm-up, so that the counts cover timed calls only."""
        self.attempts = 0
        self.accepted = 0

    def require_all_accepted(self, phase: str) -> None:
        if self.accepted != self.attempts:
            raise BenchmarkFailure(
                f"{self.name}: {self.attempts - self.accepted} of {self.attempts} "
                f"verifications in the {phase} were rejected"
            )

    def count(self, accepted: bool) -> None:
        self.attempts += 1
        self.accepted += accepted


# --- The core ----------------------------------------------------------------


@dataclass(frozen=True)
class CorePortal:
    """A portal with two-factor authentication on and one enrolled Master Admin."""

    ctx: Context
    clock: ManualClock
    portal_id: int
    user_id: int
    secret: bytes


def require_status(result: signin.SignInResult, expected: signin.Status) -> None:
    if result.status != expected:
        raise BenchmarkFailure(
            f"sign-in step returned {result.status} ({result.message}), "
            f"expected {expected}"
        )


def open_core_portal(path: Path) -> CorePortal:
    """Create the portal and enroll its Master Admin through the normal sign-in calls."""
    clock = ManualClock(START_TIME)
    ctx = open_context(
        f"sqlite:///{path}", clock=clock, key=Fernet.generate_key(), fast_hashing=True
    )
    with ctx.engine.connect() as connection:
        require_sqlite_durability(path.name, connection.connection.driver_connection)

    admin.create_portal(ctx, PORTAL_SLUG, PORTAL_NAME)
    user_id = admin.add_user(ctx, PORTAL_SLUG, USERNAME, PASSWORD, "master-admin")
    before = signin.submit_password(ctx, PORTAL_SLUG, USERNAME, PASSWORD)
    require_status(before, signin.Status.SIGNED_IN)
    admin.set_two_factor(ctx, before.session, PORTAL_SLUG, True)

    started = signin.submit_password(ctx, PORTAL_SLUG, USERNAME, PASSWORD)
    require_status(started, signin.Status.ENROLLMENT_REQUIRED)
    offer = signin.enrollment_offer(ctx, started.challenge)
    secret = totp.decode_secret(offer.grouped_secret)
    confirmed = signin.submit_code(
        ctx, started.challenge, totp.totp(secret, clock.now())
    )
    require_status(confirmed, signin.Status.SIGNED_IN)

    portal_id = admin.portal_settings(ctx, PORTAL_SLUG).portal_id
    return CorePortal(ctx, clock, portal_id, user_id, secret)


class CoreVerification(Case):
    """``verification.verify_for_user``: one complete code check, committed."""

    def __init__(self, portal: CorePortal) -> None:
        super().__init__(
            "core: verify_for_user",
            "BEGIN IMMEDIATE, read of enrollment, settings and throttle, secret "
            "decryption, HMAC, replay UPDATE, audit INSERT, COMMIT",
        )
        self.portal = portal

    def measure_once(self) -> int:
        portal = self.portal
        portal.clock.advance(PERIOD)
        code = totp.totp(portal.secret, portal.clock.now())

        started = time.perf_counter_ns()
        verdict = verify_for_user(portal.ctx, portal.user_id, code)
        elapsed = time.perf_counter_ns() - started

        self.count(verdict.accepted)
        return elapsed


class CoreSignIn(Case):
    """``signin.submit_code`` on a challenge that an untimed ``submit_password`` opened."""

    def __init__(self, portal: CorePortal) -> None:
        super().__init__(
            "core: submit_code",
            "the whole code step of a sign-in in one transaction: read of challenge, "
            "enrollment, settings and throttle, verify_code, challenge completed, "
            "session opened, second audit row",
        )
        self.portal = portal

    def measure_once(self) -> int:
        portal = self.portal
        portal.clock.advance(PERIOD)
        # The argon2 password check happens here, outside the timed part.
        pending = signin.submit_password(portal.ctx, PORTAL_SLUG, USERNAME, PASSWORD)
        require_status(pending, signin.Status.CODE_REQUIRED)
        code = totp.totp(portal.secret, portal.clock.now())

        started = time.perf_counter_ns()
        result = signin.submit_code(portal.ctx, pending.challenge, code)
        elapsed = time.perf_counter_ns() - started

        self.count(result.status == signin.Status.SIGNED_IN)
        return elapsed


# --- The bare floor ----------------------------------------------------------

REPLAY_UPDATE = (
    "UPDATE enrollment SET last_step = ?, drift = ? "
    "WHERE id = ? AND status = ? AND last_step < ?"
)
AUDIT_INSERT = (
    "INSERT INTO audit_event (at, portal_id, portal_slug, actor_kind, actor, "
    "target, event, outcome, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class BareSqlite(Case):
    """The replay UPDATE and the audit INSERT through ``sqlite3``, and nothing else."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            "bare sqlite3: UPDATE + INSERT",
            "BEGIN IMMEDIATE, the same replay UPDATE and audit INSERT as the core "
            "on the same schema through the sqlite3 module, COMMIT",
        )
        # The core creates the schema and the enrolled user, then steps aside.
        portal = open_core_portal(path)
        with portal.ctx.engine.connect() as connection:
            self.enrollment_id, self.step = connection.execute(
                select(Enrollment.id, Enrollment.last_step).where(
                    Enrollment.user_id == portal.user_id,
                    Enrollment.status == EnrollmentStatus.ACTIVE,
                )
            ).one()
        self.portal_id = portal.portal_id
        portal.ctx.engine.dispose()

        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        require_sqlite_durability(path.name, self.connection)
        self.cursor = self.connection.cursor()

    def measure_once(self) -> int:
        self.step += 1
        cursor = self.cursor
        audit_row = (
            self.step * PERIOD,
            self.portal_id,
            PORTAL_SLUG,
            "user",
            USERNAME,
            USERNAME,
            str(audit.Event.CODE_ACCEPTED),
            str(audit.Outcome.SUCCESS),
            None,
            json.dumps({"offset": 0}),
        )

        started = time.perf_counter_ns()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(
            REPLAY_UPDATE,
            (
                self.step,
                0,
                self.enrollment_id,
                EnrollmentStatus.ACTIVE.value,
                self.step,
            ),
        )
        claimed = cursor.rowcount
        cursor.execute(AUDIT_INSERT, audit_row)
        cursor.execute("COMMIT")
        elapsed = time.perf_counter_ns() - started

        self.count(claimed == 1)
        return elapsed


def require_sqlite_durability(label: str, connection: sqlite3.Connection) -> None:
    """Raise BenchmarkFailure unless ``connection`` uses WAL with synchronous=FULL."""
    journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = connection.execute("PRAGMA synchronous").fetchone()[0]
    if journal_mode != "wal" or synchronous != 2:
        raise BenchmarkFailure(
            f"{label}: journal_mode={journal_mode}, synchronous={synchronous}, "
            "expected wal and 2 (FULL)"
        )


# --- django-otp --------------------------------------------------------------


class DjangoOtp:
    """A Django project with django-otp's TOTP plugin and two users with a confirmed device each.

    django-otp's ``verify_token`` reads ``time.time()`` through its module's
    ``time`` name. That name is replaced by a stepped clock, so each token
    belongs to a fresh time step without waiting a real period.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        configure_django(path)

        from django.contrib.auth import get_user_model
        from django.db import connection
        from django_otp.plugins.otp_totp import models as totp_models

        self.connection = connection
        self.clock = ManualClock(START_TIME)
        totp_models.time = types.SimpleNamespace(time=lambda: float(self.clock.now()))
        self.device_model = totp_models.TOTPDevice

        connection.ensure_connection()
        require_sqlite_durability(path.name, connection.connection)

        self.devices = []
        for username in (USERNAME, f"{USERNAME}-loading"):
            user = get_user_model().objects.create_user(username)
            self.devices.append(
                self.device_model.objects.create(
                    user=user, name="phone", confirmed=True
                )
            )

    def stored_last_t(self, device_id: int) -> int:
        """Read a device's ``last_t`` through a second connection, which reads only committed data."""
        with closing(sqlite3.connect(self.path)) as other:
            (last_t,) = other.execute(
                "SELECT last_t FROM otp_totp_totpdevice WHERE id = ?", (device_id,)
            ).fetchone()
        return last_t


def configure_django(path: Path) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL"
                },
            }
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django_otp",
            "django_otp.plugins.otp_totp",
        ],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    # OTP_TOTP_THROTTLE_FACTOR (1: throttling on) and OTP_TOTP_SYNC (True: drift
    # tracking on) keep django-otp's defaults.
    django.setup()
    call_command("migrate", verbosity=0)


class DjangoVerifyToken(Case):
    """``TOTPDevice.verify_token`` on a device already in memory, or loaded first."""

    def __init__(self, project: DjangoOtp, load_device: bool) -> None:
        if load_device:
            super().__init__(
                "django-otp: load device + verify_token",
                "TOTPDevice.objects.get by primary key, then verify_token",
            )
        else:
            super().__init__(
                "django-otp: verify_token",
                "verify_token on a device in memory: throttle check, TOTP, "
                "save() as one autocommitted UPDATE",
            )
        self.project = project
        self.load_device = load_device
        self.device = project.devices[1 if load_device else 0]
        self.key = self.device.bin_key
        self.last_step = -1

    def measure_once(self) -> int:
        clock = self.project.clock
        clock.advance(PERIOD)
        self.last_step = totp.time_step(clock.now(), PERIOD)
        token = totp.totp(self.key, clock.now())

        started = time.perf_counter_ns()
        if self.load_device:
            self.device = self.project.device_model.objects.get(pk=self.device.pk)
        accepted = self.device.verify_token(token)
        elapsed = time.perf_counter_ns() - started

        self.count(accepted)
        return elapsed

    def save_committed(self) -> bool:
        """Return True when the last accepted token's step is committed to the file.

        ``verify_token`` saves the device with one UPDATE. In Django's default
        autocommit mode that UPDATE is a transaction of its own and commits at once.
        """
        connection = self.project.connection
        if not connection.get_autocommit() or connection.in_atomic_block:
            return False
        stored = self.project.stored_last_t(self.device.pk)
        return self.device.last_t == self.last_step and stored == self.last_step


# --- Running and reporting ---------------------------------------------------


def run_rounds(
    cases: list[Case], iterations: int, warmup: int, rounds: int
) -> dict[str, list[int]]:
    """Warm up every case, then time ``iterations`` verifications each, in turns."""
    for case in cases:
        for _ in range(warmup):
            case.measure_once()
        case.require_all_accepted("warm-up")
        case.start_timing()

    samples: dict[str, list[int]] = {case.name: [] for case in cases}
    base, extra = divmod(iterations, rounds)
    for round_index in range(rounds):
        count = base + (1 if round_index < extra else 0)
        for case in cases:
            samples[case.name].extend(case.measure_once() for _ in range(count))

    for case in cases:
        case.require_all_accepted("timed run")
    return samples


def summarise(case: Case, samples_ns: list[int]) -> Summary:
    """Compute median, 99th percentile and throughput (from the mean) in microseconds."""
    samples_us = [sample / 1000 for sample in samples_ns]
    mean_us = statistics.fmean(samples_us)
    return Summary(
        name=case.name,
        description=case.description,
        iterations=len(samples_us),
        accepted=case.accepted,
        median_us=statistics.median(samples_us),
        p99_us=statistics.quantiles(samples_us, n=100)[98],
        mean_us=mean_us,
        per_second=1_000_000 / mean_us,
    )


def compare(core: Summary, django: Summary, floor: Summary) -> dict[str, dict]:
    """Judge both targets on the median time, and give the ratios of the means beside.

    The median is the judge because the virtual disk of a shared machine
    stalls now and then, and a few stalls move the mean far more than the median.
    """
    speedup = django.median_us / core.median_us
    slowdown = core.median_us / floor.median_us
    return {
        "core_vs_django_otp": {
            "ratio_median": speedup,
            "ratio_mean": core.per_second / django.per_second,
            "target": f">= {MIN_SPEEDUP_OVER_DJANGO_OTP}",
            "passed": speedup >= MIN_SPEEDUP_OVER_DJANGO_OTP,
        },
        "core_vs_floor": {
            "ratio_median": slowdown,
            "ratio_mean": floor.per_second / core.per_second,
            "target": f"<= {MAX_SLOWDOWN_OVER_FLOOR}",
            "passed": slowdown <= MAX_SLOWDOWN_OVER_FLOOR,
        },
    }


def filesystem_of(folder: Path) -> str:
    """Return the device and file system type that hold ``folder``, from /proc/mounts."""
    best_mount, best = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in mounts:
        device, mount_point, fs_type, *_ = line.split()
        inside = str(folder).startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best_mount):
            best_mount, best = mount_point, f"{fs_type} on {device}"
    return best


def describe_machine(folder: Path) -> dict[str, object]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ("sqlalchemy", "django", "django-otp", "cryptography")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: metadata.version(name) for name in packages},
        "database_folder": str(folder),
        "filesystem": filesystem_of(folder),
    }


def format_table(summaries: list[Summary]) -> str:
    lines = [
        "| case | median µs | p99 µs | verifications/s | accepted |",
        "|---|---:|---:|---:|---:|",
    ]
    for summary in summaries:
        lines.append(
            f"| {summary.name} | {summary.median_us:.0f} | {summary.p99_us:.0f} "
            f"| {summary.per_second:.0f} | {summary.accepted}/{summary.iterations} |"
        )
    return "\n".join(lines)


def format_ratios(ratios: dict[str, dict]) -> str:
    labels = {
        "core_vs_django_otp": "core speed-up over django-otp load device + verify_token",
        "core_vs_floor": "core time over the bare sqlite3 floor",
    }
    lines = []
    for key, ratio in ratios.items():
        verdict = "pass" if ratio["passed"] else "FAIL"
        lines.append(
            f"{labels[key]}: {ratio['ratio_median']:.2f} on medians "
            f"({ratio['ratio_mean']:.2f} on means), target {ratio['target']}: {verdict}"
        )
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid: use 1 or more")
    return value


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time one committed TOTP code verification in the core, in "
        "django-otp and as bare sqlite3 writes, all on SQLite in WAL mode with "
        "synchronous=FULL, and compare them with the targets."
    )
    parser.add_argument(
        "--iterations",
        type=positive_int,
        default=2000,
        help="timed verifications per case (default: 2000)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=200,
        help="untimed verifications per case before timing starts (default: 200)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=4,
        help="blocks into which each case's iterations are split; the cases take "
        "turns block by block (default: 4)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON file for the results and the machine description (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--scratch-dir",
        type=Path,
        default=None,
        help="folder in which the temporary database folder is created. Its disk "
        "sets the fsync time (default: the system temporary folder)",
    )
    arguments = parser.parse_args(argv)
    if arguments.iterations < 2:
        parser.error("--iterations must be at least 2 for a 99th percentile")
    if arguments.warmup < 0:
        parser.error(f"--warmup {arguments.warmup} is invalid: use 0 or more")
    if arguments.rounds > arguments.iterations:
        parser.error(
            f"--rounds {arguments.rounds} is larger than --iterations "
            f"{arguments.iterations}"
        )
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    with tempfile.TemporaryDirectory(
        prefix="verify-code-", dir=arguments.scratch_dir
    ) as scratch:
        folder = Path(scratch)
        core_portal = open_core_portal(folder / "core-verify.sqlite3")
        signin_portal = open_core_portal(folder / "core-signin.sqlite3")
        floor = BareSqlite(folder / "floor.sqlite3")
        django_project = DjangoOtp(folder / "django.sqlite3")
        django_cases = [
            DjangoVerifyToken(django_project, load_device=False),
            DjangoVerifyToken(django_project, load_device=True),
        ]
        core_case = CoreVerification(core_portal)
        cases: list[Case] = [
            core_case,
            CoreSignIn(signin_portal),
            *django_cases,
            floor,
        ]

        samples = run_rounds(
            cases, arguments.iterations, arguments.warmup, arguments.rounds
        )
        django_commits = all(case.save_committed() for case in django_cases)
        if not django_commits:
            raise BenchmarkFailure(
                "django-otp's verify_token left its save uncommitted in autocommit mode"
            )
        machine = describe_machine(folder)

        core_portal.ctx.close()
        signin_portal.ctx.engine.dispose()
        floor.connection.close()
        django_project.connection.close()

    summaries = [summarise(case, samples[case.name]) for case in cases]
    by_name = {summary.name: summary for summary in summaries}
    # The core reads its enrollment inside the timed call, so the fair django-otp
    # case is the one that loads its device too.
    ratios = compare(
        by_name["core: verify_for_user"],
        by_name["django-otp: load device + verify_token"],
        by_name["bare sqlite3: UPDATE + INSERT"],
    )

    print(format_table(summaries))
    print()
    print(format_ratios(ratios))
    print(
        f"django-otp verify_token committed its save in autocommit mode: {django_commits}"
    )

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": {
            "iterations": arguments.iterations,
            "warmup": arguments.warmup,
            "rounds": arguments.rounds,
        },
        "machine": machine,
        "results": [asdict(summary) for summary in summaries],
        "ratios": ratios,
        "django_otp_commits_in_autocommit": django_commits,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {arguments.output}")
    return 0 if all(ratio["passed"] for ratio in ratios.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        sys.exit(2)
