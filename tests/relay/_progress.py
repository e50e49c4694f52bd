"""Progress observers that interrupt a transfer at a chosen byte count (for the tests)."""

from __future__ import annotations


class StopAfter:
    """A ``wirelab.client.Progress`` that raises ``exc`` once ``limit`` bytes have moved."""

    def __init__(self, limit: int, exc: BaseException | None = None) -> None:
        self.limit, self.exc, self.seen = limit, exc or KeyboardInterrupt(), 0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int) -> None:
        self.seen += n
        if self.seen >= self.limit:
            self.hit()

    def hit(self) -> None:
        """What happens at the limit (subclasses do something else)."""
        raise self.exc

    def end(self) -> None:
        pass
