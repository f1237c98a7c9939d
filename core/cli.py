"""The ``twofa`` command line.

Exit status: 0 on success, 1 when the policy rejects, 2 on bad usage. Errors
are one line on standard error. Passwords and codes are read from the terminal,
or one per line from standard input when it is not a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    NoSuchModuleError,
    OperationalError,
)

from core import (
    admin,
    audit,
    db,
    demo,
    encryption,
    keys,
    messages,
    operators,
    signin,
    support,
)
from core.context import Context, open_context
from core.errors import (
    AlreadyExists,
    InvalidValue,
    KeyProblem,
    NotFound,
    PermissionDenied,
    TwoFactorError,
)
from core.passwords import check_new_password
from core.signin import Status

log = logging.getLogger("twofa.cli")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class Rejected(Exception):
    """The policy rejected the request; the message is for the person at the terminal."""


class InputReader:
    """Reads secrets from the terminal without echo, or lines from a pipe."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()

    def secret(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return getpass.getpass(prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None


def say(text: str = "") -> None:
    print(text, flush=True)


def sign_in(
    ctx: Context,
    reader: InputReader,
    portal: str,
    username: str,
    qr_png: Path | None = None,
) -> signin.SignInResult:
    """Run the whole sign-in at the terminal; return the SIGNED_IN result or raise Rejected."""
    password = reader.secret("Password: ")
    if password is None:
        raise Rejected("no password was given")
    result = signin.submit_password(ctx, portal, username, password)
    last_rejection = None

    while True:
        if result.status == Status.SIGNED_IN:
            return result
        if result.challenge is None or result.status == Status.LOCKED:
            raise Rejected(result.message)
        if result.status == Status.ENROLLMENT_REQUIRED:
            show_enrollment(ctx, result.challenge, qr_png)
        elif last_rejection is None:
            print(result.message, file=sys.stderr, flush=True)

        code = reader.line("Authentication code: ")
        if code is None:
            raise Rejected(
                "no authentication code was given; the sign-in was not completed"
            )
        outcome = signin.submit_code(ctx, result.challenge, code)
        if outcome.status == Status.REJECTED and outcome.challenge is not None:
            # A wrong code keeps the sign-in open: ask again.
            print(outcome.message, file=sys.stderr, flush=True)
            result = signin.SignInResult(
                Status.CODE_REQUIRED,
                "Try the current code.",
                challenge=outcome.challenge,
            )
            continue
        result = outcome


def show_enrollment(ctx: Context, challenge: str, qr_png: Path | None) -> None:
    offer = signin.enrollment_offer(ctx, challenge)
    say("Two-factor authentication is required. Scan this QR code with your")
    say(
        "authenticator app (Duo Mobile, Microsoft Authenticator, Google Authenticator, Authy)."
    )
    say(offer.qr_text())
    say(f"Key URI: {offer.uri}")
    say(f"Or type the key by hand: {offer.grouped_secret}")
    say(f"Account: {offer.account}   Issuer: {offer.issuer}")
    say("Some apps ask for a name for the entry: any name you will recognise works.")
    say(f"This QR code expires at {messages.format_time(offer.expires_at)}.")
    if qr_png is not None:
        qr_png.write_bytes(offer.qr_png())
        say(f"QR code written to {qr_png}")
    say("Enter the first code that the app shows to confirm.")


def command_init_db(ctx: Context, args: argparse.Namespace) -> int:
    say(f"Database ready: {ctx.engine.url.render_as_string(hide_password=True)}")
    return EXIT_OK


def command_portal_add(ctx: Context, args: argparse.Namespace) -> int:
    portal = admin.create_portal(ctx, args.slug, args.name)
    say(
        f"Portal {portal.slug!r} ({portal.name}) created; two-factor authentication is off."
    )
    return EXIT_OK


def command_user_add(ctx: Context, args: argparse.Namespace) -> int:
    reader = InputReader()
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n") if line else None
    else:
        password = reader.secret("New password: ")
        if reader.interactive and password != reader.secret("Repeat the password: "):
            raise InvalidValue("the two passwords differ; nothing was changed")
    if not password:
        raise InvalidValue("no password was given; nothing was changed")
    # Check the new user's details before the acting user signs in.
    admin.check_username(args.username)
    check_new_password(password)
    session = None
    if args.acting_user is not None:
        session = sign_in(ctx, reader, args.portal, args.acting_user).session
    try:
        admin.add_user(ctx, args.portal, args.username, password, args.profile, session)
    finally:
        signin.sign_out(ctx, session)
    say(f"User {args.username!r} added to portal {args.portal!r} as {args.profile}.")
    return EXIT_OK


def command_login(ctx: Context, args: argparse.Namespace) -> int:
    result = sign_in(ctx, InputReader(), args.portal, args.username, args.qr_png)
    user = signin.current_user(ctx, result.session)
    method = "password and code" if user.with_code else "password"
    say(f"Signed in as {user.username!r} to portal {user.portal_slug!r} with {method}.")
    signin.sign_out(ctx, result.session)
    return EXIT_OK


def command_settings(ctx: Context, args: argparse.Namespace) -> int:
    if args.two_factor is None and args.window is None:
        raise InvalidValue("nothing to change: give --two-factor on|off or --window N")
    result = sign_in(ctx, InputReader(), args.portal, args.acting_user)
    try:
        if args.two_factor is not None:
            change = admin.set_two_factor(
                ctx, result.session, args.portal, args.two_factor == "on"
            )
            state = "on" if change.enabled else "off"
            if not change.changed:
                say(f"Two-factor authentication was already {state}; nothing changed.")
            elif change.enabled:
                say(
                    "Two-factor authentication is on: every internal user enrolls "
                    "at the next sign-in."
                )
            else:
                say(
                    "Two-factor authentication is off: "
                    f"{change.revoked} enrollment(s) revoked."
                )
        if args.window is not None:
            admin.set_window(ctx, result.session, args.portal, args.window)
            say(f"Window set to {args.window} time step(s) on either side.")
    finally:
        signin.sign_out(ctx, result.session)
    return EXIT_OK


def command_reset(ctx: Context, args: argparse.Namespace) -> int:
    result = sign_in(ctx, InputReader(), args.portal, args.acting_user)
    try:
        reset = admin.reset_enrollment(
            ctx, result.session, args.portal, args.target, args.reason
        )
    finally:
        signin.sign_out(ctx, result.session)
    say(f"Enrollment of {reset.target!r} reset; they enroll again at the next sign-in.")
    return EXIT_OK


def operator_sign_in(ctx: Context, reader: InputReader, name: str) -> str:
    """Sign a support operator in with password and code; return the session token."""
    password = reader.secret("Operator password: ")
    if password is None:
        raise Rejected("no operator password was given")
    code = reader.line("Operator authentication code: ")
    if code is None:
        raise Rejected("no operator authentication code was given")
    result = operators.sign_in_operator(ctx, name, password, code)
    if result.session is None:
        raise Rejected(result.message)
    return result.session


def command_support_reset(ctx: Context, args: argparse.Namespace) -> int:
    support.check_ticket(args.ticket)
    checklist = support.Checklist(
        requester_matches=args.requester_matches,
        called_back=args.called_back,
        last_admin_confirmed=args.last_admin_confirmed,
    )
    session = operator_sign_in(ctx, InputReader(), args.operator)
    try:
        reset = support.support_reset(
            ctx, session, args.ticket, args.portal, args.target, checklist
        )
    finally:
        operators.sign_out_operator(ctx, session)
    say(
        f"Support reset of {reset.target!r} in portal {args.portal!r} recorded under "
        f"ticket {args.ticket} (audit event {reset.audit_event_id}); they enroll again "
        "at the next sign-in."
    )
    return EXIT_OK


def command_operator_add(ctx: Context, args: argparse.Namespace) -> int:
    reader = InputReader()
    password = reader.secret("New operator password: ")
    if reader.interactive and password != reader.secret("Repeat the password: "):
        raise InvalidValue("the two passwords differ; nothing was changed")
    if not password:
        raise InvalidValue("no password was given; nothing was changed")
    offer = operators.add_operator(ctx, args.name, password)
    say(
        f"Operator {offer.name!r} added. Add this key to the operator's authenticator app:"
    )
    say(offer.qr_text())
    say(f"Key URI: {offer.uri}")
    say(f"Or type the key by hand: {offer.grouped_secret}")
    if args.qr_png is not None:
        args.qr_png.write_bytes(offer.qr_png())
        say(f"QR code written to {args.qr_png}")
    say("Enter the first code that the app shows to confirm.")
    while True:
        code = reader.line("Authentication code: ")
        if code is None:
            raise Rejected(
                "the operator was added but not confirmed; confirm it with "
                f"`twofa operator confirm {shlex.quote(offer.name)}`"
            )
        result = operators.confirm_operator(ctx, offer.name, code)
        if result.status == operators.OperatorStatus.SIGNED_IN:
            say(
                f"Operator {offer.name!r} confirmed; they can sign in to the support console."
            )
            return EXIT_OK
        print(result.message, file=sys.stderr, flush=True)
        if result.status == operators.OperatorStatus.LOCKED:
            raise Rejected(result.message)


def command_operator_confirm(ctx: Context, args: argparse.Namespace) -> int:
    code = InputReader().line("Authentication code: ")
    if code is None:
        raise Rejected("no authentication code was given")
    result = operators.confirm_operator(ctx, args.name, code)
    if result.status != operators.OperatorStatus.SIGNED_IN:
        raise Rejected(result.message)
    say(f"Operator {args.name!r} confirmed.")
    return EXIT_OK


def command_audit(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.reader.connect() as connection:
        portal_id = admin.portal_settings(ctx, args.portal).portal_id
        events = audit.recent_events(connection, portal_id, args.limit)
    events.reverse()
    if args.json:
        say(json.dumps([event.model_dump() for event in events], indent=2))
        return EXIT_OK
    for event in events:
        parts = [
            messages.format_time(event.at),
            event.event,
            event.outcome,
            f"actor={event.actor_kind}:{event.actor or '-'}",
            f"target={event.target or '-'}",
        ]
        if event.reason:
            parts.append(f"reason={event.reason}")
        if event.detail:
            parts.append(event.detail)
        say("  ".join(parts))
    return EXIT_OK


def report_demo(ctx: Context) -> None:
    """Seed the demo portal into an empty database and print how to sign in to it."""
    created = demo.seed_demo(ctx)
    has_demo = any(
        portal.slug == demo.DEMO_PORTAL for portal in admin.list_portals(ctx)
    )
    if created:
        say("Demo data created.")
    if has_demo:
        say(demo.describe_demo())
    else:
        say("The database already has portals, so no demo portal was added.")


def command_keys_rotate(ctx: Context, args: argparse.Namespace) -> int:
    ctx.close()  # the rotation opens the database with the keys it writes
    result = keys.rotate_keys()
    if result.from_environment:
        say(
            f"{result.rotated} secret(s) re-encrypted under the first key of "
            f"{encryption.KEY_VARIABLE}; remove the old key from the variable now."
        )
    else:
        say(
            f"{result.rotated} secret(s) re-encrypted under a new key; "
            f"{result.key_file} now holds the new key only."
        )
    return EXIT_OK


def command_demo_seed(ctx: Context, args: argparse.Namespace) -> int:
    report_demo(ctx)
    return EXIT_OK


def command_dashboard(ctx: Context, args: argparse.Namespace) -> int:
    """Seed the demo portal when the database has none, then run Streamlit in this process."""
    report_demo(ctx)
    say(f"Database: {ctx.engine.url.render_as_string(hide_password=True)}")
    ctx.close()
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    say(f"Dashboard: http://{args.address}:{args.port}")
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.address",
            args.address,
            "--server.port",
            str(args.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
    )
    return EXIT_OK  # not reached: execvp replaces the process


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="twofa",
        description="Two-factor sign-in (TOTP) for the internal users of billing portals. "
        "The database is TWOFA_DATABASE_URL, or an SQLite file in TWOFA_DATA_DIR (./data).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "init-db", help="create or upgrade the database schema"
    ).set_defaults(handler=command_init_db)

    portal = commands.add_parser("portal", help="manage portals")
    portal_commands = portal.add_subparsers(dest="portal_command", required=True)
    portal_add = portal_commands.add_parser("add", help="create a portal")
    portal_add.add_argument("slug", help="short name in URLs, such as acme")
    portal_add.add_argument(
        "--name", required=True, help="name shown as issuer in the app"
    )
    portal_add.set_defaults(handler=command_portal_add)

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_add = user_commands.add_parser("add", help="add a user to a portal")
    user_add.add_argument("portal")
    user_add.add_argument("username")
    user_add.add_argument(
        "--profile",
        required=True,
        choices=[*admin.PROFILE_NAMES, "customer"],
        help="internal profile, or customer",
    )
    user_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    user_add.add_argument(
        "--as",
        dest="acting_user",
        metavar="USERNAME",
        help="Master Admin who signs in to add the user; required once the portal "
        "has a Master Admin",
    )
    user_add.set_defaults(handler=command_user_add)

    login = commands.add_parser(
        "login", help="sign in with password and code; enroll if needed"
    )
    login.add_argument("portal")
    login.add_argument("username")
    login.add_argument(
        "--qr-png", type=Path, metavar="FILE", help="also write the QR as PNG"
    )
    login.set_defaults(handler=command_login)

    settings = commands.add_parser(
        "settings", help="change a portal's two-factor settings"
    )
    settings.add_argument("portal")
    settings.add_argument("--two-factor", choices=["on", "off"])
    settings.add_argument(
        "--window",
        type=int,
        choices=range(admin.MAX_WINDOW + 1),
        metavar="N",
        help=f"time steps accepted on either side of ours (0 to {admin.MAX_WINDOW})",
    )
    settings.add_argument(
        "--as",
        dest="acting_user",
        required=True,
        metavar="USERNAME",
        help="Master Admin who signs in to make the change",
    )
    settings.set_defaults(handler=command_settings)

    reset = commands.add_parser(
        "reset", help="reset another internal user's enrollment"
    )
    reset.add_argument("portal")
    reset.add_argument("target", help="username whose enrollment is reset")
    reset.add_argument(
        "--as",
        dest="acting_user",
        required=True,
        metavar="USERNAME",
        help="Master Admin who signs in to make the reset",
    )
    reset.add_argument("--reason", help="why, for the audit log")
    reset.set_defaults(handler=command_reset)

    support = commands.add_parser("support", help="vendor support actions")
    support_commands = support.add_subparsers(dest="support_command", required=True)
    support_reset = support_commands.add_parser(
        "reset", help="guided reset, for example of a locked-out last Master Admin"
    )
    support_reset.add_argument("portal")
    support_reset.add_argument("target")
    support_reset.add_argument("--ticket", required=True, help="support ticket id")
    support_reset.add_argument(
        "--operator",
        required=True,
        help="support operator who signs in (password, then code, from the terminal)",
    )
    support_reset.add_argument(
        "--requester-matches",
        action="store_true",
        help="checklist: the requester's name and e-mail match the user record",
    )
    support_reset.add_argument(
        "--called-back",
        action="store_true",
        help="checklist: you called the requester back on the number on file",
    )
    support_reset.add_argument(
        "--last-admin-confirmed",
        action="store_true",
        help="checklist: second confirmation, required when the target is the "
        "portal's last Master Admin",
    )
    support_reset.set_defaults(handler=command_support_reset)

    operator = commands.add_parser("operator", help="manage support operators")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    operator_add = operator_commands.add_parser(
        "add", help="add a support operator with password and authenticator app"
    )
    operator_add.add_argument("name")
    operator_add.add_argument(
        "--qr-png", type=Path, metavar="FILE", help="also write the QR as PNG"
    )
    operator_add.set_defaults(handler=command_operator_add)
    operator_confirm = operator_commands.add_parser(
        "confirm", help="confirm an added operator with the first code"
    )
    operator_confirm.add_argument("name")
    operator_confirm.set_defaults(handler=command_operator_confirm)

    audit_parser = commands.add_parser("audit", help="show a portal's audit log")
    audit_parser.add_argument("portal")
    audit_parser.add_argument("--json", action="store_true", help="print JSON")
    audit_parser.add_argument(
        "--limit", type=positive_int, default=50, help="newest N events (default 50)"
    )
    audit_parser.set_defaults(handler=command_audit)

    # The simulator imports pandas and Altair, so its own parser is loaded only
    # when the command is simulate; this entry lists it in the help.
    commands.add_parser(
        "simulate",
        help="run a QA scenario (drift, replay, switch, brute-force); "
        "see twofa simulate --help",
        add_help=False,
    ).add_argument("arguments", nargs=argparse.REMAINDER)

    keys_parser = commands.add_parser("keys", help="manage the secret encryption key")
    keys_commands = keys_parser.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser(
        "rotate",
        help="re-encrypt every secret under a new key, keeping the old key until done",
    ).set_defaults(handler=command_keys_rotate)

    commands.add_parser(
        "demo-seed", help="create the demo portal and users"
    ).set_defaults(handler=command_demo_seed)

    dashboard = commands.add_parser(
        "dashboard", help="seed demo data and start the dashboard"
    )
    dashboard.add_argument("--address", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8501)
    dashboard.set_defaults(handler=command_dashboard)
    return parser


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on standard error."""

    def error(self, message: str) -> NoReturn:
        message = message.replace("\n", "\\n")
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def configure_logging() -> None:
    level_name = os.environ.get("TWOFA_LOG_LEVEL", "WARNING").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        print(
            f"twofa: TWOFA_LOG_LEVEL {level_name!r} is not a log level; using WARNING",
            file=sys.stderr,
        )
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def start(url: str | None = None) -> Context:
    """Open the database and key, turning each start-up failure into one clear error."""
    shown = db.database_url() if url is None else url
    try:
        return open_context(url)
    except KeyProblem:
        raise
    except ArgumentError as error:
        raise StartFailure(
            f"TWOFA_DATABASE_URL is not a valid database URL: {error}"
        ) from None
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise StartFailure(
            f"the database driver for TWOFA_DATABASE_URL is missing: {error}"
        ) from None
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StartFailure(
            f"cannot open the database {hide_password(shown)}: {reason}"
        ) from None
    except DatabaseError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StartFailure(
            f"{hide_password(shown)} is not a usable database: {reason}"
        ) from None
    except OSError as error:
        raise StartFailure(
            f"cannot use {error.filename or 'the data folder'}: {error.strerror}"
        ) from None


def hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the configured database"


class StartFailure(Exception):
    """The database or key could not be opened; the message gives the reason."""


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["simulate"]:
        from simulations import cli as simulation_cli

        return simulation_cli.main(arguments)
    parser = build_parser()
    args = parser.parse_args(arguments)

    try:
        ctx = start()
    except (KeyProblem, StartFailure) as error:
        print(f"twofa: {error}", file=sys.stderr)
        return EXIT_REJECTED

    try:
        return args.handler(ctx, args)
    except Rejected as error:
        print(f"twofa: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except (InvalidValue, NotFound) as error:
        print(f"twofa: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (AlreadyExists, PermissionDenied, KeyProblem) as error:
        print(f"twofa: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except TwoFactorError as error:
        print(f"twofa: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        print("twofa: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        print(
            f"twofa: cannot use {error.filename or 'a file'}: {error.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as error:
        # One line for the person; the traceback only with TWOFA_LOG_LEVEL=DEBUG.
        log.error("command %s failed with %s", args.command, type(error).__name__)
        log.debug("traceback of the failed command %s", args.command, exc_info=True)
        print(
            f"twofa: internal error ({type(error).__name__}); "
            "run again with TWOFA_LOG_LEVEL=DEBUG for details",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
