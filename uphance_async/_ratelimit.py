"""Limiters: a cap on requests in flight, and a send rate that adapts to the server's 429s.

Uphance publishes no rate limit, so unless a fixed rate is configured the limiter starts with no
rate cap at all. The adaptive rate is CUBIC-like (as TCP and aiobotocore's adaptive retry mode
are), changed where a request rate differs from a congestion window:

- **One cut per throttling episode.** A 429 for a request sent before the last cut says nothing
  new, and neither does one arriving less than a round trip (or 50 ms) after it: many
  concurrent callers, and their retries, all see the same empty bucket. Without this, 300
  callers cut the rate twenty times in 40 ms.
- **The cut is measured, not assumed.** The rate to cut from is the rate of *accepted* requests
  (answered with anything but 429) over the last half second: what the server let through
  while it was refusing, which a token-bucket server keeps near its limit however many
  requests it refuses. (A longer window reaches back to before the overload, and measures the
  client's own rate instead.)
- **A first estimate is distrusted.** The first 429 usually ends a burst the server's bucket
  absorbed, so the rate then measured says little; the rate grows from it exponentially (slow
  start) until the next 429, which does measure the server's limit.
- **Scale-free growth, then a long plateau.** CUBIC's concave climb takes the same time
  whatever the rate, up to 90 % of the measured rate (a burst the server's bucket released
  inflates the measure); the rate then holds for ten seconds and probes beyond linearly, 5 % a
  second, since with ``Retry-After`` every probe that overshoots costs a whole pause, and a
  slow overshoot is measured more precisely. After a ``Retry-After`` pause the rate resumes on
  the plateau: the pause already let the server's bucket refill, and a deeper cut on top of it
  only wastes the budget.
- **No stampede.** Requests pass a gate one at a time, each at least ``1 / rate`` after the one
  before, the rate read afresh as each waits: queued requests (retries included) leave a
  ``Retry-After`` pause or a cut evenly spaced rather than all at once, and follow a rate that
  grows while they wait.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio
import attrs

__all__ = [
    "WINDOW",
    "Limiter",
    "RateLimiter",
    "Throttle",
    "after_429",
    "rate_at",
    "smoothed",
    "too_early",
]

_BETA = 0.7  # a cut keeps this share of the accepted rate
_HOLD_SHARE = 0.9  # the plateau, as a share of the accepted rate (which a burst inflates)
_K = 2.0  # seconds to climb from the cut to the plateau
_HOLD = 10.0  # seconds on the plateau before probing above it
_PROBE = 0.05  # the probe's slope: +5 % of the accepted rate per second
_DOUBLING = 0.5  # seconds per doubling in slow start
_MIN_RATE = 0.5
WINDOW = 2.0  # seconds of accepted requests kept
_MEASURE = 0.5  # the last seconds the cut is measured on: when the server refused, not before
_MIN_CUT_INTERVAL = 0.05
_NAP = 0.1  # the longest a waiting request sleeps before it looks at the rate again
NEVER = -1e18  # a time long past (finite, so that it survives a trip through Redis)


@attrs.frozen
class Throttle:
    """The adaptive state shared by every request of a limiter (in memory, or in Redis).

    ``w_max`` is the accepted rate measured at the last cut (0: no cap yet); the rate is a
    function of it and of the time since the climb began (:func:`rate_at`).
    """

    w_max: float = 0.0
    slow_start: bool = False
    last_cut: float = NEVER
    paused_until: float = NEVER
    paused_at: float = NEVER


def rate_at(state: Throttle, now: float) -> float | None:
    """The adaptive rate cap at ``now``: ``None`` before the first 429."""
    if not state.w_max:
        return None
    # The climb starts when the pause (if any) ends.
    elapsed = max(0.0, now - max(state.last_cut, state.paused_until))
    if state.slow_start:
        share = 2 ** min(elapsed / _DOUBLING, 60.0)
    elif state.paused_until > state.last_cut:
        # The server's pause already let its bucket refill: resume on the plateau.
        share = _HOLD_SHARE + _PROBE * max(0.0, elapsed - _K - _HOLD)
    elif elapsed < _K:
        # CUBIC's concave climb, from the cut to the plateau.
        share = _BETA + (_HOLD_SHARE - _BETA) * (1 - (1 - elapsed / _K) ** 3)
    else:
        share = _HOLD_SHARE + _PROBE * max(0.0, elapsed - _K - _HOLD)
    return max(_MIN_RATE, state.w_max * share)


def after_429(
    state: Throttle,
    *,
    now: float,
    sent_at: float,
    retry_after: float | None,
    adaptive: bool,
    rtt: float,
    accepted: Callable[[float], float | None],
    accepted_count: int,
) -> Throttle:
    """The state once a request sent at ``sent_at`` was answered 429 at ``now``.

    ``accepted(window)`` is the rate of accepted requests over the last ``window`` seconds
    (``None`` when the limiter has not been sending long enough to tell) and
    ``accepted_count`` how many there were in the last two seconds.
    """
    current = rate_at(state, now) if adaptive else None  # before a pause restarts the climb
    if retry_after and sent_at >= state.paused_at:
        state = attrs.evolve(
            state, paused_at=now, paused_until=max(state.paused_until, now + retry_after)
        )
    if not adaptive or sent_at < state.last_cut:
        return state  # sent before the last cut took effect: nothing new
    if now - state.last_cut < max(_MIN_CUT_INTERVAL, rtt):
        return state
    measured = accepted(_MEASURE)
    if measured is None:
        # A burst the server absorbed: start low and grow fast until the next 429.
        w_max, slow_start = max(_MIN_RATE, accepted_count / WINDOW), True
    else:
        base = measured if current is None else min(current, measured)
        w_max, slow_start = max(_MIN_RATE, base), False
    return attrs.evolve(state, w_max=w_max, slow_start=slow_start, last_cut=now)


def too_early(now: float, first_send: float | None) -> bool:
    """Whether sending began too recently for a measured rate to tell anything."""
    return first_send is None or now - first_send < WINDOW / 4


def accepted_rate(
    times: deque[float], now: float, first_send: float | None, window: float
) -> float | None:
    """Requests per second among ``times`` (send times, oldest first) over the last ``window``
    seconds; ``None`` when sending began too recently to tell."""
    if first_send is None or too_early(now, first_send):
        return None
    span = min(window, now - first_send)
    return sum(1 for sent in times if sent >= now - span) / span


@runtime_checkable
class RateLimiter(Protocol):
    """What ``UphanceClient(limiter=...)`` accepts: every request of the client goes through it.

    The transport holds a :meth:`slot` for each attempt (retries included) and then tells the
    limiter how it went: :meth:`throttled` for a 429, :meth:`accepted` for anything else.
    ``sent_at`` is the time :meth:`slot` yielded, on the limiter's own clock.
    """

    @property
    def max_in_flight(self) -> int:
        """The cap on requests in flight at once (in this process)."""
        ...

    @property
    def rate(self) -> float | None:
        """The current cap in requests per second, ``None`` when there is none."""
        ...

    def slot(self) -> AbstractAsyncContextManager[float]:
        """Hold one place in flight, entered once the rate allows; yields the send time."""
        ...

    async def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """The request sent at ``sent_at`` was answered 429 (``retry_after`` in seconds)."""
        ...

    async def accepted(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` was answered with anything but 429."""
        ...


class Limiter:
    """The in-process :class:`RateLimiter`: at most ``max_in_flight`` requests at once, and a
    rate cap. ``rate`` fixes the cap in requests per second (never adapted); ``None`` adapts it
    to the server's 429s, as the module's documentation describes.

    One limiter serves every request of one client; share one client across an application.
    ``clock`` and ``sleep`` are for tests.
    """

    def __init__(
        self,
        max_in_flight: int = 16,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._slots = anyio.CapacityLimiter(checked_in_flight(max_in_flight))
        self._clock = clock
        self._sleep = sleep
        self._fixed = checked_rate(rate)
        self._state = Throttle()
        self._gate = anyio.Lock()
        self._last_send = NEVER
        self._accepted: deque[float] = deque()
        self._first_send: float | None = None
        self._rtt = 0.0

    @property
    def rate(self) -> float | None:
        """The current cap in requests per second, ``None`` when there is none."""
        if self._fixed is not None:
            return self._fixed
        return rate_at(self._state, self._clock())

    @property
    def max_in_flight(self) -> int:
        """The cap on requests in flight."""
        return int(self._slots.total_tokens)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one of the in-flight places, once the rate allows; yields the send time."""
        async with self._slots:
            sent_at = await self._wait_turn()
            try:
                yield sent_at
            finally:
                self._rtt = smoothed(self._rtt, self._clock() - sent_at)

    async def _wait_turn(self) -> float:
        # One request at a time waits at the gate (in arrival order); it leaves once the rate
        # and any pause allow, both read again after every nap, since either may change.
        async with self._gate:
            while True:
                now = self._clock()
                rate = self.rate
                ready = self._state.paused_until
                if rate is not None:
                    ready = max(ready, self._last_send + 1.0 / rate)
                if ready <= now:
                    break
                await self._sleep(min(ready - now, _NAP))
            self._last_send = now
        if self._first_send is None:
            self._first_send = now
        return now

    def hold(self, rate: float) -> None:
        """Go on at ``rate`` as if it had been measured and climbed to: it holds, then probes
        above it as after any cut (a shared limiter's fallback keeps its share this way)."""
        if self._fixed is None:
            self._state = Throttle(w_max=rate / _HOLD_SHARE, last_cut=self._clock() - _K)

    async def accepted(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` was not throttled: count it in the accepted rate."""
        if self._fixed is not None:
            return
        self._accepted.append(sent_at)
        self._forget(self._clock())

    def _forget(self, now: float) -> None:
        while self._accepted and self._accepted[0] < now - WINDOW:
            self._accepted.popleft()

    async def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A request sent at ``sent_at`` got a 429: pause for ``retry_after`` and, once per
        episode, cut the rate."""
        now = self._clock()
        self._forget(now)
        self._state = after_429(
            self._state,
            now=now,
            sent_at=sent_at,
            retry_after=retry_after,
            adaptive=self._fixed is None,
            rtt=self._rtt,
            accepted=lambda window: accepted_rate(self._accepted, now, self._first_send, window),
            accepted_count=len(self._accepted),
        )


def smoothed(average: float, sample: float) -> float:
    """A round trip's moving average (``0``: none yet) after one more ``sample``."""
    return sample if not average else 0.8 * average + 0.2 * sample


def checked_in_flight(value: object) -> int:
    """``value`` if it is a valid ``max_in_flight``, else the error naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_in_flight must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {value!r}")
    return value


def checked_rate(value: object, name: str = "rate") -> float | None:
    """``value`` if it is a valid fixed rate (or ``None``), else the error naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of requests/s, not {value!r}")
    return float(value)
