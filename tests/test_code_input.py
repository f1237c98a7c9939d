"""Typed codes: what is folded, what is rejected, and that every rejection counts."""

import pytest
from sqlmodel import Session, select

from core import signin
from core.codes import FormatProblem, normalise_code
from core.models import CodeThrottle, User
from core.signin import Reason, Status
from tests.helpers import PERIOD, add_acme, code_at, code_challenge, enroll

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
CIRCLED = str.maketrans("0123456789", "⓪①②③④⑤⑥⑦⑧⑨")

# (case name, turn the right code into the typed input, expected problem or None if accepted)
CASES = [
    ("plain", lambda code: code, None),
    ("surrounding spaces", lambda code: f"  {code}\t", None),
    ("one space inside", lambda code: f"{code[:3]} {code[3:]}", None),
    ("one dash inside", lambda code: f"{code[:3]}-{code[3:]}", None),
    ("full-width digits", lambda code: code.translate(FULL_WIDTH), None),
    ("full-width space inside", lambda code: f"{code[:3]}\u3000{code[3:]}", None),
    ("leading zeros missing", lambda code: str(int(code)), FormatProblem.WRONG_LENGTH),
    ("an int", lambda code: int(code), FormatProblem.NOT_TEXT),
    (
        "Arabic-Indic digits",
        lambda code: code.translate(ARABIC_INDIC),
        FormatProblem.NOT_DIGITS,
    ),
    (
        "Devanagari digits",
        lambda code: code.translate(DEVANAGARI),
        FormatProblem.NOT_DIGITS,
    ),
    (
        "zero-width space",
        lambda code: f"{code[:3]}\u200b{code[3:]}",
        FormatProblem.NOT_DIGITS,
    ),
    ("zero-width joiner", lambda code: f"\u200d{code}", FormatProblem.NOT_DIGITS),
    ("letters", lambda code: "abcdef", FormatProblem.NOT_DIGITS),
    ("letter O for zero", lambda code: "O" + code[1:], FormatProblem.NOT_DIGITS),
    ("empty", lambda code: "", FormatProblem.EMPTY),
    ("only spaces", lambda code: "   ", FormatProblem.EMPTY),
    ("None", lambda code: None, FormatProblem.NOT_TEXT),
    ("100 KB string", lambda code: "1" * 100_000, FormatProblem.TOO_LONG_INPUT),
    (
        "two separators",
        lambda code: f"{code[:2]} {code[2:4]} {code[4:]}",
        FormatProblem.NOT_DIGITS,
    ),
    ("separator at the start", lambda code: f"-{code}", FormatProblem.NOT_DIGITS),
    ("seven digits", lambda code: code + "1", FormatProblem.WRONG_LENGTH),
    ("bytes", lambda code: code.encode(), FormatProblem.NOT_TEXT),
    ("circled digits", lambda code: code.translate(CIRCLED), FormatProblem.NOT_DIGITS),
    ("superscript digit", lambda code: "¹" + code[1:], FormatProblem.NOT_DIGITS),
    ("file separator", lambda code: "\x1c" + code, FormatProblem.NOT_DIGITS),
    ("next line", lambda code: code + "\x85", FormatProblem.NOT_DIGITS),
    ("lone surrogate", lambda code: code[:5] + "\ud800", FormatProblem.NOT_DIGITS),
]


def failures_of(ctx, username):
    with Session(ctx.engine) as session:
        return session.exec(
            select(CodeThrottle.failures).join(User).where(User.username == username)
        ).one()


def first_step_with_leading_zero(secret, start):
    """Return a time from ``start`` on whose code starts with 0, so 'missing zeros' is real."""
    now = start
    while not code_at(secret, now).startswith("0"):
        now += PERIOD
    return now


@pytest.mark.parametrize(
    ("name", "make_input", "problem"), CASES, ids=[c[0] for c in CASES]
)
def test_typed_code(ctx, clock, name, make_input, problem):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.set(first_step_with_leading_zero(secret, ctx.now() + 10 * PERIOD))
    challenge = code_challenge(ctx, "sam@acme.test")

    typed = make_input(code_at(secret, ctx.now()))
    result = signin.submit_code(ctx, challenge, typed)

    if problem is None:
        assert result.status == Status.SIGNED_IN, f"{name}: {result.message}"
        assert failures_of(ctx, "sam@acme.test") == 0
        return
    assert result.status == Status.REJECTED, name
    assert result.reason == Reason.BAD_FORMAT, name
    assert result.format_problem == problem, name
    assert result.message, name
    assert result.challenge == challenge, f"{name}: the sign-in should stay open"
    assert failures_of(ctx, "sam@acme.test") == 1, (
        f"{name}: the failure was not counted"
    )


def test_normalise_never_raises_on_odd_objects():
    for raw in [b"123456", 123456, 12.5, [], {}, object(), "\x00" * 6, "\ud800" * 6]:
        result = normalise_code(raw, 6)
        assert result.code is None
        assert result.problem is not None


def test_wrong_length_message_mentions_leading_zeros(ctx, clock):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    clock.advance(5 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")

    result = signin.submit_code(ctx, challenge, "12345")

    assert "6 digits" in result.message
    assert "leading zeros" in result.message
