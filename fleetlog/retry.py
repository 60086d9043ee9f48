"""How long to wait before trying again: fleetlog's one retry delay (stdlib only).

Every stage that retries something that failed for a while (the sink's inserts while
ClickHouse is away, the processors' sends while Kafka is away) asks one :class:`Backoff`
per retried thing for its next delay and resets it after a success.  The delay grows
exponentially up to a cap, and each is jittered by +-20 % so that many workers that
failed together do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(kw_only=True)
class Backoff:
    """Exponential backoff with jitter: ``initial_seconds * factor**failures``, capped at ``max_seconds``.

    Not thread-safe: one owner asks for delays.  It never sleeps itself -- the caller
    decides how to wait (``asyncio.sleep``, pausing Kafka partitions, ...).
    """

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    failures: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not (0 < self.initial_seconds <= self.max_seconds) or self.factor < 1 or not (0 <= self.jitter < 1):
            raise ValueError(
                "Backoff needs 0 < initial_seconds <= max_seconds, factor >= 1 and 0 <= jitter < 1; "
                f"got {self.initial_seconds}, {self.max_seconds}, {self.factor}, {self.jitter}"
            )

    def next_delay(self) -> float:
        """Seconds to wait after one more failure."""
        delay = min(self.initial_seconds * self.factor ** min(self.failures, 64), self.max_seconds)
        self.failures += 1
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Forget the failures: the next delay is ``initial_seconds`` again (after a success)."""
        self.failures = 0
