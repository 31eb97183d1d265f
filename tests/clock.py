"""A clock the test moves, for the code that takes a ``clock`` (monotonic seconds)."""

from __future__ import annotations


class FakeClock:
    """Returns ``now`` when called; the test sets or advances ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
