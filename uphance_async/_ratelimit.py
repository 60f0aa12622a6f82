"""The client-wide limiter: a cap on requests in flight and a request rate that adapts to 429s.

Uphance publishes no rate limit, so unless a fixed rate is configured the limiter starts with no
rate cap at all. The first 429 sets a cap below the rate actually measured; after that the cap
follows CUBIC (as aiobotocore's adaptive retry mode and TCP do): a multiplicative cut on each
throttling episode, a quick climb back towards the rate at which throttling last started, then
slow probing beyond it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

# CUBIC's constants: the cut keeps BETA of the rate; SCALE sets how fast the cap climbs back.
_BETA = 0.7
_SCALE = 0.4
_MIN_RATE = 0.5
_RATE_WINDOW = 2.0


class Limiter:
    """Shared by every request of one client: at most ``max_in_flight`` at once, and a rate cap.

    ``rate`` fixes the cap in requests per second (never adapted); ``None`` means adaptive.
    """

    def __init__(
        self,
        max_in_flight: int,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight!r}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate_limit must be a positive number of requests/s, not {rate!r}")
        self._slots = anyio.CapacityLimiter(max_in_flight)
        self._clock = clock
        self._sleep = sleep
        self._adaptive = rate is None
        self._rate = rate
        self._next_send = 0.0
        self._paused_until = 0.0
        self._last_cut = float("-inf")
        self._rate_at_cut = 0.0
        self._rate_after_cut = 0.0
        self._sent: deque[float] = deque()

    @property
    def rate(self) -> float | None:
        """The current cap in requests per second, ``None`` when there is none."""
        if self._adaptive and self._rate is not None:
            return self._cubic(self._clock())
        return self._rate

    @property
    def max_in_flight(self) -> int:
        """The cap on requests in flight."""
        return int(self._slots.total_tokens)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one of the in-flight places, once the rate allows; yields the send time."""
        async with self._slots:
            sent_at = await self._wait_turn()
            yield sent_at

    async def _wait_turn(self) -> float:
        now = self._clock()
        rate = self.rate
        if rate is not None:
            # Reserve the next free send time before sleeping, so waiting requests queue in order.
            send_at = max(now, self._next_send)
            self._next_send = send_at + 1.0 / rate
            if send_at > now:
                await self._sleep(send_at - now)
        # A 429 that arrived while this request waited pauses it too; another 429 during the
        # pause moves its end, so look again after each sleep (a deadline, not an event).
        while (pause := self._paused_until - self._clock()) > 0:
            await self._sleep(pause)
        now = self._clock()
        self._sent.append(now)
        while self._sent and self._sent[0] < now - _RATE_WINDOW:
            self._sent.popleft()
        return now

    def measured_rate(self) -> float:
        """Requests sent per second over the last couple of seconds."""
        now = self._clock()
        recent = [t for t in self._sent if t >= now - _RATE_WINDOW]
        if len(recent) < 2:
            return float(len(recent)) or _MIN_RATE
        return len(recent) / max(now - recent[0], 1e-3)

    def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A request sent at ``sent_at`` got a 429: pause, and cut the rate once per episode."""
        now = self._clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if not self._adaptive or sent_at < self._last_cut:
            # Requests already in flight when the rate was cut tell nothing new.
            return
        current = self.rate
        base = self.measured_rate() if current is None else min(current, self.measured_rate())
        self._rate_at_cut = max(base, _MIN_RATE)
        self._rate_after_cut = max(self._rate_at_cut * _BETA, _MIN_RATE)
        self._rate = self._rate_after_cut
        self._last_cut = now
        self._next_send = max(self._next_send, now)

    def _cubic(self, now: float) -> float:
        elapsed = now - self._last_cut
        k = float(((self._rate_at_cut - self._rate_after_cut) / _SCALE) ** (1 / 3))
        return max(_MIN_RATE, _SCALE * (elapsed - k) ** 3 + self._rate_at_cut)
