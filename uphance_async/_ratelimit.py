"""Limiters: a cap on requests in flight, and a send rate that adapts to the server's 429s.

Uphance publishes no rate limit, so unless a fixed rate is configured the limiter starts with no
rate cap at all. The adaptive rate is CUBIC-like (as TCP and aiobotocore's adaptive retry mode
are), changed where a request rate differs from a congestion window:

- **One cut per throttling episode.** A 429 for a request sent before the last cut, or in the
  half second after it, says nothing new (without a ``Retry-After`` pause the server's bucket,
  emptied by the overload, is still refilling, and refuses some requests sent at the new
  rate), and neither does one arriving less than a round trip (or 50 ms) after it: many
  concurrent callers, and their retries, all see the same empty bucket. Without this, 300
  callers cut the rate twenty times in 40 ms, and four processes sharing a ``RedisLimiter``
  cut it three times per episode, to half the budget.
- **The cut is measured, not assumed.** The rate to cut from is the rate of *accepted* requests
  (answered with anything but 429) over the last half second: what the server let through
  while it was refusing, which a token-bucket server keeps near its limit however many
  requests it refuses. A 429 that ends a slow start or a probe is measured over all of it (up
  to two seconds): each began with the server's bucket full, and its last half second
  released the bucket as well (68/s measured against a budget of 50, a plateau above the
  budget, and a pause every few seconds after). A 429 less than half a second after a pause
  ended has no such window (it would measure the pause, when nothing was sent): the rate is
  halved instead.
- **A first estimate is distrusted.** The first 429 usually ends a burst the server's bucket
  absorbed, so the rate then measured says little; the rate starts from that burst as if it
  had been accepted over half a second (as later cuts are measured), and at least from eight
  requests' worth (16/s), and grows from it exponentially (slow start) until the next 429,
  which does measure the server's limit. Processes starting together then start alike: the one
  whose first window the bucket took no longer starts at 20/s while the others, which found
  the bucket empty, start at 0.5/s and are cut to nothing by its overshoots.
- **Growth, then a plateau held while alone.** CUBIC's concave climb takes two seconds up to
  90 % of the measured rate (a burst the server's bucket released inflates the measure), or
  to the measured rate itself after a slow start, whose window averages the climb from well
  below the budget and so offsets the burst (at 90 % of it, a limiter alone held 0.87 of its
  budget for the ten seconds until its first probe; the FastAPI recipe with 50 users held 0.81
  of the budget over 20 s, and now 0.86). The
  rate then holds and probes beyond, slowly at first (5 % a second, since with ``Retry-After``
  every probe that overshoots costs a whole pause, and a slow overshoot is measured more
  precisely), then faster and faster (CUBIC's convex region: the cube of the seconds spent
  probing). After a ``Retry-After`` pause the rate resumes on the plateau: the pause already
  let the server's bucket refill, and a deeper cut on top of it only wastes the budget.
- **Fair shares without talking.** Several processes with their own limiters against one
  budget (Celery or Uvicorn workers without ``RedisLimiter``) converge as TCP flows do:
  - *The convex term is in requests/s* (0.4 times the cube of the seconds probing, as
    CUBIC's), the same for every limiter, not a share of its own rate: one holding 4/s
    regains as many requests/s as one holding 36/s, where growth in proportion to the rate
    would keep their ratio for ever.
  - *The plateau is held only while nobody else probes.* Ten seconds after a 429 that ended
    its own probe (the rate 5 % or more above its plateau): alone against its budget, a
    limiter spends a pause per probe, and few probes keep most of the budget. A 429 that comes
    while it held its plateau (or had barely left it) was caused by another's probe, or by a
    plateau set too high: it then probes as soon as its climb ends, rather than leave the
    others the room they find.
  - *A small plateau is held for less time.* The ten seconds apply from 20 requests/s up;
    below, the hold shrinks as the cube root of the plateau (as CUBIC's time back to its last
    maximum does), 5.6 s at 3.6/s. A process left with a small share when others probed
    finds its room again sooner, where ten seconds at every share left one process at 3/s
    for ten seconds after the others had finished (the slowest of four at 1.45 of the ideal).
  - *A deep cut is regained by doubling.* The limiter remembers the rate it last held (three
    seconds or more past a climb: what the server let through, not the top of a probe), less
    and less (by half every minute). A plateau below half of it is not held: others' probes
    or a busy server cut it deep, and the room is likely to come back, so after its climb the
    rate doubles every half second up to the rate remembered (as slow start does), then
    probes above it as above any plateau. Cut to a tenth of 40/s, a limiter is back to 32/s
    3.8 s after the cut (1.8 s after a ``Retry-After`` pause), where the convex probe alone
    took 6.2 s (4.1 s).
  - *A cut is measured on what was let through* (below), which is where the processes
    holding more give way more, and keeps at least half the plateau: at a few requests/s
    half a second holds one or two sends, and a measure that found none accepted would cut a
    small share to nothing.

  In ``python -m benchmarks fairness`` (four processes, 300 ``get()`` each, 40 requests/s,
  burst 10; ideal 30 s) the slowest finished at 1.07-1.27 of the ideal over nine runs
  (median 1.16), with 3.1-4.5 % of requests answered 429 (1.21-1.79 before these rules,
  median 1.64 over nine runs: one process took the budget at the start and the others shared
  what was left). A shared ``RedisLimiter`` (one state, so a 429 on its plateau cannot come
  from another's probe, and the hold is kept) remains the way to exact fairness and fewer
  429s: 1.11-1.21, 0.7-2.8 %.
- **A small first window.** Against an unknown budget, at most four requests are in flight
  before the server has answered; once it has, without a 429, eight; then one more for each
  answer that is not a 429 to a request sent after the first answer came (TCP's initial
  window, widened once a round trip has shown the budget has room: the first window's answers
  arrive in one burst, and widening on them sends more at a bucket the window may just have
  emptied). Nothing more is sent until the whole first window has been answered (or half a
  second has passed: a slow call must not hold the others back): the answers let through
  come back before the others' 429s, and a request sent on a place one of them freed met
  that emptied bucket too. Four processes starting together each sent eight at a
  bucket of ten: in the simulation of the fairness benchmark, 25 of their 52 429s came in
  the first two seconds, and 13 of 41 with four each. A stream, whose first page goes alone,
  still has eight in flight once it is answered.
- **On schedule.** Sends are spaced from when each was due, not from when its timer fired: a
  timer's lateness would otherwise lengthen every interval.
- **No stampede.** Requests pass a gate one at a time, each at least ``1 / rate`` after the one
  before, the rate read afresh as each waits: queued requests (retries included) leave a
  ``Retry-After`` pause or a cut evenly spaced rather than all at once, and follow a rate that
  grows while they wait.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

import anyio
import attrs

__all__ = [
    "WINDOW",
    "Limiter",
    "Queue",
    "RateLimiter",
    "Shed",
    "Throttle",
    "after_429",
    "rate_at",
    "refusal",
    "sheds",
    "smoothed",
    "too_early",
]

_BETA = 0.7  # a cut keeps this share of the accepted rate
_HOLD_SHARE = 0.9  # the plateau, as a share of the accepted rate (which a burst inflates)
_K = 2.0  # seconds to climb from the cut to the plateau
_HOLD = 10.0  # the longest a plateau is held before probing above it (less when others probe)
_FULL_HOLD = 20.0  # requests/s from which a plateau is held all of _HOLD (below: less)
_PROBE = 0.05  # the probe's first slope: +5 % of the plateau per second
_CONVEX = 6.0  # seconds of probing after which the convex term alone doubles the rate
_OWN = 1.05  # a 429 with the rate this far above its plateau ends the limiter's own probe
_CONVEX_RATE = 0.4  # requests/s the probe adds, times the cube of its seconds (as CUBIC's C)
_DOUBLING = 0.5  # seconds per doubling in slow start
_FAR = 0.5  # a plateau below this share of the peak is regained by doubling, with no hold
_HELD = 3.0  # seconds a rate is held past the climb before a cut makes it the peak remembered
_MEMORY = 60.0  # seconds in which the peak remembered falls by half
_MIN_RATE = 0.5
WINDOW = 2.0  # seconds of accepted requests kept
_MEASURE = 0.5  # the last seconds the cut is measured on: when the server refused, not before
_MIN_CUT_INTERVAL = 0.05
_FIRST_WINDOW = 4  # requests in flight at once before the server has answered (adaptive)
_INITIAL_WINDOW = 8  # once its first answer was not a 429; and a first slow start's floor
_WINDOW_WAIT = 0.5  # the longest a send waits for the rest of the first window's answers
_SETTLE = 0.5  # seconds after a cut in which 429s still belong to its episode
_NAP = 0.1  # the longest a waiting request sleeps before it looks at the rate again
NEVER = -1e18  # a time long past (finite, so that it survives a trip through Redis)


def loop_time() -> float:
    """The running event loop's clock: what :func:`anyio.current_time` reads on asyncio,
    without asking which async library runs (a lookup per call on every request's path)."""
    return asyncio.get_running_loop().time()


@attrs.frozen
class Throttle:
    """The adaptive state shared by every request of a limiter (in memory, or in Redis).

    ``w_max`` is the accepted rate measured at the last cut (0: no cap yet; after a slow start,
    that rate over :data:`_HOLD_SHARE`, so that the plateau is the measure itself) and ``hold``
    the seconds the plateau after it is held before probing; the rate is a function of both and of
    the time since the climb began (:func:`rate_at`). ``peak`` is the rate last held a while
    (0: none), as of ``peak_at`` (:func:`_peak`): far below it, the climb doubles back to it.
    """

    w_max: float = 0.0
    slow_start: bool = False
    last_cut: float = NEVER
    paused_until: float = NEVER
    paused_at: float = NEVER
    hold: float = _HOLD
    peak: float = 0.0
    peak_at: float = NEVER


def _elapsed(state: Throttle, now: float) -> float:
    """Seconds into the climb at ``now``: it starts when the pause (if any) ends, and after a
    pause on the plateau (the server's pause already let its bucket refill)."""
    elapsed = max(0.0, now - max(state.last_cut, state.paused_until))
    if not state.slow_start and state.paused_until > state.last_cut:
        elapsed += _K
    return elapsed


def rate_at(state: Throttle, now: float) -> float | None:
    """The adaptive rate cap at ``now``: ``None`` before the first 429."""
    if not state.w_max:
        return None
    elapsed = _elapsed(state, now)
    if state.slow_start:
        return max(_MIN_RATE, state.w_max * 2 ** min(elapsed / _DOUBLING, 60.0))
    if elapsed < _K:
        # CUBIC's concave climb, from the cut to the plateau.
        share = _BETA + (_HOLD_SHARE - _BETA) * (1 - (1 - elapsed / _K) ** 3)
        return max(_MIN_RATE, state.w_max * share)
    # Then hold, and probe above: slowly at first (where the last 429 came), then faster and
    # faster (CUBIC's convex region). The convex term is also in requests/s, the same for
    # every limiter whatever its rate: one holding a small share of a budget regains as many
    # requests/s as one holding a large share, so shares converge, and a limiter with room
    # again finds it in seconds.
    probe = max(0.0, _probing_for(state, elapsed))
    plateau = _plateau(state)
    peak = _regain_to(state, now)
    if peak is not None:
        # Far below a rate it held not long ago (others' probes cut it, or the server was
        # busy): the room is likely back, so double up to that rate (slow start), and probe
        # above it from there.
        doubling = _DOUBLING * math.log2(peak / plateau)
        if probe < doubling:
            return max(_MIN_RATE, plateau * 2 ** (probe / _DOUBLING))
        plateau, probe = peak, probe - doubling
    relative = 1 + _PROBE * probe + (probe / _CONVEX) ** 3
    return max(_MIN_RATE, plateau * relative + _CONVEX_RATE * probe**3)


def _regain_to(state: Throttle, now: float) -> float | None:
    """The rate remembered, when the plateau is far enough below it to double back to it
    (``None``: hold and probe as usual)."""
    if not state.peak:
        return None
    peak = _peak(state, now)
    return peak if _plateau(state) < _FAR * peak else None


def _peak(state: Throttle, now: float) -> float:
    """The rate remembered (last held a while before a cut), as of ``now``: it halves every
    :data:`_MEMORY` seconds, since the older it is the less it says of the budget's room."""
    return state.peak * math.exp2((state.peak_at - now) / _MEMORY)


def _plateau(state: Throttle) -> float:
    """The rate the climb after the last cut reaches and holds."""
    return _HOLD_SHARE * state.w_max


def _probing_for(state: Throttle, elapsed: float) -> float:
    """Seconds spent probing above the plateau, ``elapsed`` seconds into the climb (negative
    before the probe begins)."""
    return elapsed - _K - state.hold


def _window(state: Throttle, now: float) -> float:
    """The seconds a cut at ``now`` is measured on: the last half second, or all of the slow
    start or probe it ends (up to :data:`WINDOW`). Both begin with the server's bucket full (a
    pause, or a plateau below the budget, let it refill) and empty it: half a second of that
    once measured 68/s against a budget of 50, and each plateau set from such a measure cost
    another pause."""
    seconds = _elapsed(state, now)
    if not state.slow_start:
        seconds = _probing_for(state, seconds)
    return min(WINDOW, max(_MEASURE, seconds))


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
    shared: bool = False,
) -> Throttle:
    """The state once a request sent at ``sent_at`` was answered 429 at ``now``.

    ``accepted(window)`` is the rate of accepted requests over the last ``window`` seconds
    (``None`` when the limiter has not been sending long enough to tell) and
    ``accepted_count`` how many there were in the last two seconds. ``shared``: the state is
    every process's (a ``RedisLimiter``), so no other limiter's probe can cause a 429, and the
    hold is kept.
    """
    current = rate_at(state, now) if adaptive else None  # before a pause restarts the climb
    # A rate held a while, not one a climb or a slow start passed through.
    held = not state.slow_start and _elapsed(state, now) - _K >= _HELD
    holds = state.hold > 0
    if current is not None and not state.slow_start and not shared:
        # A 429 that ends a probe says this limiter found the budget's edge: hold the next
        # plateau. One that comes while it held its plateau, climbed to it or had barely left
        # it says others share the budget and are probing (or the plateau was set too high):
        # waiting would only leave them the room they find, so the next probe begins as soon
        # as the climb ends.
        holds = current > _OWN * _plateau(state)
    # The measuring window must not reach into the last pause, when nothing was sent.
    measurable = now - state.paused_until >= _MEASURE
    window = _window(state, now)
    if retry_after and sent_at >= state.paused_at:
        state = attrs.evolve(
            state, paused_at=now, paused_until=max(state.paused_until, now + retry_after)
        )
    if not adaptive or sent_at < state.last_cut + _SETTLE:
        return state  # sent before the last cut took effect: nothing new
    if now - state.last_cut < max(_MIN_CUT_INTERVAL, rtt):
        return state
    measured = accepted(window) if measurable else None
    if measured is not None:
        # At most to half the plateau at once: at a few requests/s half a second holds one or
        # two sends, and a measure that found none accepted would cut a small share to nothing.
        # (Half the plateau, not of the current cap, which a long probe took far above what
        # was being sent.)
        base = measured
        if current is not None:
            base = max(min(current, measured), min(current, _plateau(state)) / 2)
        if state.slow_start:
            # Its window averages the climb from well below the budget, which offsets the burst
            # that the plateau's share allows for: the plateau is the measure itself (at 90 %
            # of it, a limiter alone held 0.87 of its budget until its first probe).
            base /= _HOLD_SHARE
        w_max, slow_start = max(_MIN_RATE, base), False
    elif current is not None:
        # Refused right after a pause, before anything could be measured: what was being
        # sent was too much, and a window reaching into the pause would say almost nothing
        # was accepted (a shared budget once fell to 0.5 requests/s that way). Halve it.
        w_max, slow_start = max(_MIN_RATE, current / 2), False
    else:
        # A burst the server absorbed: start from it, as if it had been accepted over the
        # measuring window as later cuts are, and grow fast until the next 429. At least
        # from eight requests' worth: processes starting together that found the bucket
        # emptied by the others start where the lucky one does, not from nothing.
        w_max, slow_start = max(accepted_count, _INITIAL_WINDOW) / _MEASURE, True
    decided = attrs.evolve(state, w_max=w_max, slow_start=slow_start, last_cut=now)
    if shared:
        return decided
    # What the server let through, not what a probe was sending (far above it, at times).
    kept = max(_plateau(state), measured or 0.0)
    if current is not None and held and kept > _peak(state, now):
        decided = attrs.evolve(decided, peak=kept, peak_at=now)
    # Far below the peak, holding would only delay the climb back to it.
    holds = holds and _regain_to(decided, now) is None
    return attrs.evolve(decided, hold=_hold_for(_plateau(decided)) if holds else 0.0)


def _hold_for(plateau: float) -> float:
    """Seconds a limiter alone holds ``plateau`` before probing above it: all of
    :data:`_HOLD` from :data:`_FULL_HOLD` requests/s, less below, as the cube root of the
    plateau (CUBIC's time back to its last maximum grows so): a small share of a budget others
    also probe is found again sooner (5.6 s at 3.6/s), while each probe of a limiter alone
    still costs a pause only every ten seconds or so."""
    return _HOLD * math.cbrt(min(1.0, plateau / _FULL_HOLD))


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

    def slot(self, deadline: float | None = None) -> AbstractAsyncContextManager[float]:
        """Hold one place in flight, entered once the rate allows; yields the send time.

        With a ``deadline`` (on :func:`anyio.current_time`'s clock) a limiter that can tell
        the call would not be let through before it raises :class:`Shed` at once instead of
        queueing. The transport passes ``deadline`` only when the client has one, so a
        limiter written before deadlines existed keeps working without them. A limiter may
        also have ``sheds(deadline, after)`` (see :meth:`Limiter.sheds`), which the transport
        asks before it waits to retry: a retry that would only be shed is not waited for.
        """
        ...

    async def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """The request sent at ``sent_at`` was answered 429 (``retry_after`` in seconds)."""
        ...

    async def accepted(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` was answered with anything but 429."""
        ...


call_began: ContextVar[float | None] = ContextVar("uphance_async_call_began", default=None)
"""When the call now being made began (``anyio.current_time()``), set by the transport for
each call: its retries keep the place in the queue that its first attempt had."""


class Places:
    """``total`` places in flight, given to waiters in the order of their keys (the time their
    call began), not of their attempts: a retry does not go to the back of the queue."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiters: list[tuple[float, int, anyio.Event]] = []
        self._arrivals = itertools.count()

    @property
    def available(self) -> int:
        """Places free now."""
        return max(0, self.total - self.used)

    async def acquire(self, key: float) -> None:
        """Take a place, once every waiter with an earlier key has had one."""
        if self.used < self.total:
            self.used += 1
            # Let the others run, as any acquire does (a bare turn of the loop: anyio's
            # shielded checkpoint cost a raw stream 8 % of its speed).
            try:
                await asyncio.sleep(0)
            except BaseException:
                self.release()
                raise
            return
        waiter = (key, next(self._arrivals), anyio.Event())
        heapq.heappush(self._waiters, waiter)
        try:
            await waiter[2].wait()
        except BaseException:
            if waiter[2].is_set():
                self.release()  # handed a place just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        """Give a place back: to the waiter with the earliest key, if any."""
        if self._waiters:
            heapq.heappop(self._waiters)[2].set()  # the place passes on, still in use
        else:
            self.used -= 1

    def grow(self) -> None:
        """One more place, given at once to the first waiter, if any."""
        self.total += 1
        if self._waiters:
            self.used += 1
            heapq.heappop(self._waiters)[2].set()


class Queue:
    """Places in flight, taken in the order calls began (a retry keeps its call's place) once
    a call's turn comes.

    ``waiting`` counts the calls still queued, from which a newcomer's wait is estimated. Calls
    with a deadline are also kept, in the same order, so that when the rate falls (a cut, a
    pause) :meth:`shed_late` can tell each one at once that it will not be served in time,
    instead of letting it wait until its deadline passes.
    """

    def __init__(self, max_in_flight: int) -> None:
        self.slots = Places(checked_in_flight(max_in_flight))
        self.waiting = 0
        self._deadlines: dict[object, tuple[tuple[float, int], float, anyio.CancelScope]] = {}
        self._shed: dict[object, float] = {}
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def place(
        self, turn: Callable[[], Awaitable[float]], deadline: float | None = None
    ) -> AsyncIterator[float]:
        """Hold a place once ``turn()`` (the rate's wait) returns its send time; yields it.
        Raises :class:`Shed` when :meth:`shed_late` found the call would miss ``deadline``."""
        ticket = object()
        began = call_began.get()
        key = loop_time() if began is None else began
        self.waiting += 1
        try:
            if deadline is None:
                sent_at = await self._take(turn, key)
            else:
                # A scope of its own, so that shed_late can end this call's wait and no other.
                with anyio.CancelScope() as scope:
                    self._deadlines[ticket] = ((key, next(self._arrivals)), deadline, scope)
                    sent_at = await self._take(turn, key)
                if scope.cancelled_caught:
                    raise Shed(self._shed[ticket])
        finally:
            self.waiting -= 1
            self._deadlines.pop(ticket, None)
            self._shed.pop(ticket, None)
        try:
            yield sent_at
        finally:
            self.slots.release()

    async def _take(self, turn: Callable[[], Awaitable[float]], key: float) -> float:
        await self.slots.acquire(key)
        try:
            return await turn()
        except BaseException:
            self.slots.release()
            raise

    def shed_late(self, ready: float, rate: float) -> None:
        """Shed every queued call that, leaving one per ``1 / rate`` seconds from ``ready`` in
        the queue's order, would leave after its deadline."""
        queued = sorted(self._deadlines.items(), key=lambda item: item[1][0])
        for position, (ticket, (_, deadline, scope)) in enumerate(queued):
            leaves = ready + position / rate
            if leaves > deadline and ticket not in self._shed:
                self._shed[ticket] = leaves - ready
                scope.cancel()


def refusal(
    now: float, wait: float, deadline: float, after: float, state: Throttle
) -> float | None:
    """``None`` if a call arriving ``after`` seconds from ``now`` is to be queued for
    ``deadline``, else its expected wait (``wait`` is what a call arriving now would wait).

    A call is queued only when twice its wait, plus room for one more pause as long as the last
    (at most half of what is left), fits before its deadline. A queue filled to the deadline
    misses it for most of its tail as soon as a cut or a pause slows it; this way a call told
    "no" is told at once, and one told "yes" is nearly always served, even across a throttling
    episode. A retry (``after`` > 0) has waited out its pause already, so no room for another
    is kept for it."""
    wait = max(0.0, wait - after)
    left = deadline - now - after
    last_pause = 0.0 if after else pause_length(state)
    return None if 2 * wait + min(last_pause, left / 2) <= left else wait


def sheds(limiter: RateLimiter, deadline: float, after: float) -> float | None:
    """What ``limiter.sheds(deadline, after)`` says (``None``, never, for a limiter without
    that method, such as one written before deadlines existed)."""
    method = getattr(limiter, "sheds", None)
    return method(deadline, after) if callable(method) else None


def pause_length(state: Throttle) -> float:
    """How long the last ``Retry-After`` pause was (``0``: none yet)."""
    return max(0.0, state.paused_until - state.paused_at) if state.paused_at > NEVER else 0.0


class Shed(Exception):
    """The budget cannot let a call through before its deadline; ``wait`` estimates in how
    many seconds it could be (the transport makes this a ``RateLimitError``)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the rate budget could serve this call in about {wait:.2f} s")
        self.wait = wait


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
        clock: Callable[[], float] = loop_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._queue = Queue(max_in_flight)
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._sleep = sleep
        self._fixed = checked_rate(rate)
        if self._fixed is None:
            # TCP's initial window: fewer at once before the server has answered (see "A
            # small first window" above).
            self._queue.slots.total = min(_FIRST_WINDOW, max_in_flight)
        self._state = Throttle()
        # asyncio's lock takes a free gate without a turn of the loop; anyio's would not.
        self._gate = asyncio.Lock()
        self._last_send = NEVER
        self._accepted: deque[float] = deque()
        self._first_send: float | None = None
        self._rtt = 0.0
        self._ceiling: float | None = None
        self._first_answer: float | None = None
        self._unanswered = 0  # requests sent before the first answer came, still out
        self._window_answered: anyio.Event | None = None

    @property
    def rate(self) -> float | None:
        """The current cap in requests per second, ``None`` when there is none."""
        if self._fixed is not None:
            return self._fixed
        rate = rate_at(self._state, self._clock())
        if rate is not None and self._ceiling is not None:
            return min(rate, self._ceiling)
        return rate

    @property
    def max_in_flight(self) -> int:
        """The cap on requests in flight."""
        return self._max_in_flight

    def expected_wait(self) -> float:
        """Seconds a call arriving now would wait for its turn: the pause left, then the queue
        ahead of it at the current rate (or, with no rate cap, for a place in flight)."""
        now = self._clock()
        wait = max(0.0, self._state.paused_until - now)
        rate = self.rate
        if rate is not None:
            return max(wait, self._last_send + 1.0 / rate - now) + self._queue.waiting / rate
        queued = self._queue.waiting - self._queue.slots.available
        if queued >= 0:
            wait += self._rtt * (queued + 1) / self._queue.slots.total
        return wait

    def sheds(self, deadline: float, after: float = 0.0) -> float | None:
        """``None`` if a call arriving in ``after`` seconds would be queued for ``deadline``
        (see :func:`refusal`), else its expected wait. The transport asks before it waits to
        retry, so that a retry that would only be shed is not waited for."""
        return refusal(self._clock(), self.expected_wait(), deadline, after, self._state)

    @asynccontextmanager
    async def slot(self, deadline: float | None = None) -> AsyncIterator[float]:
        """Hold one of the in-flight places, once the rate allows; yields the send time.

        Calls wait first come, first served, by when their call began (a retry keeps its
        call's place). With a ``deadline`` a call that the queue ahead of
        it would keep past the deadline raises :class:`Shed` at once, spending nothing.
        """
        if deadline is not None:
            wait = self.sheds(deadline)
            if wait is not None:
                raise Shed(wait)
        async with self._queue.place(self._wait_turn, deadline) as sent_at:
            first = self._fixed is None and self._first_answer is None
            self._unanswered += first
            try:
                yield sent_at
            finally:
                self._rtt = smoothed(self._rtt, self._clock() - sent_at)
                if first:
                    self._unanswered -= 1
                    if not self._unanswered and self._window_answered is not None:
                        self._window_answered.set()

    async def _wait_turn(self) -> float:
        # One request at a time waits at the gate (in arrival order); it leaves once the rate
        # and any pause allow, both read again after every nap, since either may change. Those
        # queued behind it that the rate of now cannot serve in time are told so at once.
        async with self._gate:
            if self._first_answer is not None and self._unanswered:
                # Those let through come back before the others' 429s: a request sent on a
                # place one of them freed would meet the bucket the window emptied. Not for
                # long, though: one slow call must not hold every other back.
                self._window_answered = self._window_answered or anyio.Event()
                with anyio.move_on_after(_WINDOW_WAIT):
                    await self._window_answered.wait()
            while True:
                now = self._clock()
                rate = self.rate
                ready = self._state.paused_until
                if rate is not None:
                    ready = max(ready, self._last_send + 1.0 / rate)
                    self._queue.shed_late(max(ready, now), rate)
                if ready <= now:
                    break
                await self._sleep(min(ready - now, _NAP))
            # On schedule, not when the sleep happened to end: a timer's lateness would
            # otherwise lengthen every interval (a fixed 50/s sent 48.9/s). A send after an
            # idle gap starts a new schedule, so that no burst is saved up.
            on_time = rate is not None and now - ready < 1.0 / rate
            self._last_send = ready if on_time else now
        if self._first_send is None:
            self._first_send = now
        return now

    def hold(self, rate: float | None) -> None:
        """Go on at ``rate`` as if it were the plateau climbed back to after a cut, and never
        above it: a 429 still cuts, and the rate climbs back, but no probe looks for more
        (``None`` lifts that ceiling). A shared limiter's fallback keeps its share this way:
        processes that each probed on their own would cut one another unevenly, and those
        cut most would serve their callers last."""
        if self._fixed is None:
            self._ceiling = rate
            if rate is not None:
                self._state = Throttle(w_max=rate / _HOLD_SHARE, last_cut=self._clock() - _K)

    async def accepted(self, sent_at: float) -> None:
        """The request sent at ``sent_at`` was not throttled: count it in the accepted rate."""
        if self._fixed is not None:
            return
        if self._first_answer is None:
            self._first_answer = self._clock()
            while self._queue.slots.total < min(_INITIAL_WINDOW, self._max_in_flight):
                self._queue.slots.grow()
        elif self._queue.slots.total < self._max_in_flight and sent_at >= self._first_answer:
            self._queue.slots.grow()
        self._accepted.append(sent_at)
        self._forget(self._clock())

    def _forget(self, now: float) -> None:
        while self._accepted and self._accepted[0] < now - WINDOW:
            self._accepted.popleft()

    async def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A request sent at ``sent_at`` got a 429: pause for ``retry_after`` and, once per
        episode, cut the rate."""
        now = self._clock()
        if self._first_answer is None:
            self._first_answer = now
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
