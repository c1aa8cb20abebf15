"""The one error type the CLI prints as a single line plus a hint (tracebacks only with --debug)."""

from __future__ import annotations


class OutpostError(Exception):
    """A failure the user can act on: `message` says what went wrong, `hint` what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
