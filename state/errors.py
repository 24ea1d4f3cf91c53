"""A refused write: every problem found, each naming where (a CLI argument, a file's
line or row, and the field)."""

from __future__ import annotations

from collections.abc import Sequence


class StateError(ValueError):
    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("nothing was written:\n  " + "\n  ".join(self.problems))
