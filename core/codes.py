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


class FormatProblem(enum.Enum):
    """Why a typed code is not a well-formed code."""

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
    """Turn typed input into exactly ``digits`` ASCII digits, or say what is wrong."""
    if not isinstance(raw, str):
        return NormalisedCode(None, FormatProblem.NOT_TEXT)
    if len(raw) > MAX_INPUT_CHARS:
        return NormalisedCode(None, FormatProblem.TOO_LONG_INPUT)

    text = unicodedata.normalize("NFKC", raw).strip()
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
