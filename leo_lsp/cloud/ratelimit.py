"""Token-bucket rate limits per (uid, command): a full bucket allows a burst, then a steady rate.

Each bucket holds `capacity` tokens and refills at `capacity` per hour, so a user can make at most
`capacity` calls in a burst and `capacity` per hour on average. The clock is injected (monotonic
seconds) so tests need no sleeps.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from leo_lsp.errors import RateLimited
from leo_lsp.settings import RateLimitSettings

HOUR = 3600.0


class RateLimiter:
    """Per-(uid, command) token buckets; commands without a configured limit are unlimited."""

    def __init__(
        self,
        per_hour: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_hour = dict(per_hour)
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # → (tokens, updated_at)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """Limits from settings: `leo.search` (and `workspace/symbol`) at `search_per_hour`."""
        n = settings.search_per_hour
        return cls({"leo.search": n, "workspace/symbol": n}, clock=clock)

    def configure(self, command: str, per_hour: int) -> None:
        """Set (or change, e.g. on didChangeConfiguration) one command's hourly capacity."""
        with self._lock:
            self._per_hour[command] = per_hour
            for key in [k for k in self._buckets if k[1] == command]:
                tokens, at = self._buckets[key]
                self._buckets[key] = (min(tokens, float(per_hour)), at)

    def _refill(self, key: tuple[str, str], capacity: float, now: float) -> float:
        tokens, at = self._buckets.get(key, (capacity, now))
        return min(capacity, tokens + max(0.0, now - at) * capacity / HOUR)

    def check(self, uid: str, command: str, cost: float = 1.0) -> None:
        """Take `cost` tokens, or raise RateLimited saying how many seconds until it would pass."""
        capacity = self._per_hour.get(command)
        if capacity is None:
            return
        cap = float(capacity)
        key = (uid, command)
        with self._lock:
            now = self._clock()
            tokens = self._refill(key, cap, now)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return
            self._buckets[key] = (tokens, now)
        retry_after = (cost - tokens) * HOUR / cap
        raise RateLimited(
            f"{command}: limit of {capacity} per hour reached; retry in {math.ceil(retry_after)} s",
            retry_after=retry_after,
        )

    def remaining(self, uid: str, command: str) -> float | None:
        """Tokens left for (uid, command); None when the command is unlimited."""
        capacity = self._per_hour.get(command)
        if capacity is None:
            return None
        with self._lock:
            return self._refill((uid, command), float(capacity), self._clock())
