"""Two-factor sign-in (TOTP, RFC 6238) for the internal users of billing portals."""
