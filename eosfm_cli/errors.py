"""Errors a user can cause.

Every error that a user can fix is an :class:`EosfmError`. The CLI prints its message on one
line and exits with code 2; nothing else is printed unless ``--verbose`` is given.
"""

from __future__ import annotations


class EosfmError(Exception):
    """Base class of every user-facing error.

    Args:
        message: what is wrong.
        where: the file, key or path concerned.
        hint: how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Render the error as a single line: where, what, and how to fix it."""
        parts = []
        if self.where:
            parts.append(f"{self.where}: {self.message}")
        else:
            parts.append(self.message)
        if self.hint:
            parts.append(self.hint)
        return " — ".join(parts).replace("\n", " ")


class ProfileError(EosfmError):
    """A profile is missing, unreadable or invalid."""


class DataError(EosfmError):
    """A dataset root, file or sample is missing or malformed."""


class ArtifactError(EosfmError):
    """A workspace artifact (checkpoint, ensemble, cache) is missing, corrupt or unsafe."""


class WorkspaceError(EosfmError):
    """The workspace is locked, read-only, full, or lacks what a stage needs."""


class BandError(EosfmError):
    """A band name or band set is unknown, or bands cannot be adapted."""
