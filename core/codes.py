"""Normalisation of a code as a person types it, before it is checked.

Surrounding white space and one space or dash inside are allowed, and
full-width digits are folded to ASCII by Unicode NFKC. Anything else that is
not exactly the configured number of ASCII digits is rejected with a reason.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

# Longer input is rejected before any Unicode processing, so a huge paste costs nothing.
MAX_INPUT_CHARS = 64

_ASCII_DIGITS = re.compile(r"[0-9]+")
_SURROUNDING_SPACE = " \t\r\n"


def _foldable(character: str) -> bool:
    """Return True for printable ASCII, tab and line ends, and full-width forms."""
    point = ord(character)
    return (
        0x20 <= point < 0x7F
        or character in _SURROUNDING_SPACE
        or 0xFF01 <= point <= 0xFF5E  # full-width ASCII variants, digits included
        or point == 0x3000  # ideographic space, the full-width space
    )


class FormatProblem(enum.Enum):
    """The reason a typed code is not a well-formed code."""

    NOT_TEXT = "not_text"
    EMPTY = "empty"
    TOO_LONG_INPUT = "too_long_input"
    NOT_DIGITS = "not_digits"
    WRONG_LENGTH = "wrong_length"


@dataclass(frozen=True)
class NormalisedCode:
    """The outcome of normalising: either ``code`` or ``problem`` is set."""

    code: str | None
    problem: FormatProblem | None = None


def normalise_code(raw: object, digits: int) -> NormalisedCode:
    """Turn typed input into exactly ``digits`` ASCII digits, or report what is wrong."""
    if not isinstance(raw, str):
        return NormalisedCode(None, FormatProblem.NOT_TEXT)
    if len(raw) > MAX_INPUT_CHARS:
        return NormalisedCode(None, FormatProblem.TOO_LONG_INPUT)

    # NFKC folds far more than full-width forms (circled and superscript digits,
    # for example), so only ASCII and the full-width block may reach it.
    if any(not _foldable(character) for character in raw):
        return NormalisedCode(None, FormatProblem.NOT_DIGITS)
    text = unicodedata.normalize("NFKC", raw).strip(_SURROUNDING_SPACE)
    if not text:
        return NormalisedCode(None, FormatProblem.EMPTY)

    # One separator inside the code, such as "123 456" or "123-456", is allowed.
    separators = text.count(" ") + text.count("-")
    if separators == 1 and text[0] not in " -" and text[-1] not in " -":
        text = text.replace(" ", "").replace("-", "")

    if not _ASCII_DIGITS.fullmatch(text):
        return NormalisedCode(None, FormatProblem.NOT_DIGITS)
    if len(text) != digits:
        return NormalisedCode(None, FormatProblem.WRONG_LENGTH)
    return NormalisedCode(text)
