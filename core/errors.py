"""Exceptions for bad configuration and forbidden actions.

A wrong code is an outcome, not an exception: the sign-in functions return it.
Messages name the offending value and the limit, never a secret, code or password.
"""


class TwoFactorError(Exception):
    """Base class of every error raised on purpose by the core."""


class InvalidValue(TwoFactorError, ValueError):
    """A name, setting or argument is malformed or out of range."""


class NotFound(TwoFactorError, LookupError):
    """A portal, user, operator or session does not exist."""


class AlreadyExists(TwoFactorError):
    """A portal, user or operator with that name already exists."""


class PermissionDenied(TwoFactorError):
    """The actor lacks the privilege for the action."""


class NotSignedIn(PermissionDenied):
    """The session token is unknown, ended or expired."""


class KeyProblem(TwoFactorError):
    """The encryption key is missing, malformed or does not match the stored secrets."""
