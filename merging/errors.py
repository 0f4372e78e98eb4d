"""Errors that carry a message for the user (the command line prints it in one line)."""

from __future__ import annotations


class ExpertMismatchError(ValueError):
    """Experts disagree with the base; ``differences`` lists each one."""

    def __init__(self, base: str, differences: list[str]):
        self.differences = list(differences)
        lines = "; ".join(self.differences)
        super().__init__(
            f"{len(self.differences)} difference(s) between the experts and the base {base}: "
            f"{lines}"
        )


class CheckpointError(ValueError):
    """A checkpoint cannot be read: wrong kind of folder, missing files, bad values."""
