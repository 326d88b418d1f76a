"""Capped exponential backoff with jitter, with injectable randomness for tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, with "equal jitter".

    Each delay is drawn from ``[d/2, d]`` where ``d`` is the capped exponential step, so
    many workers that failed together do not retry together, yet no delay collapses to
    zero. ``reset()`` after a success starts the sequence again from ``base``.
    """

    base: float = 0.1
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay of ``attempt`` (0-based)."""
        # Cap the exponent too, so a long outage cannot overflow the float.
        return min(self.cap, self.base * 2 ** min(attempt, 62))

    def next_delay(self) -> float:
        ceiling = self.ceiling(self.attempts)
        self.attempts += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
