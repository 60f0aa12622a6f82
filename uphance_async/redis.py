"""A rate budget shared by every client, process and machine that uses the same Redis key.

``pip install "uphance-async[redis]"``, then::

    from uphance_async import UphanceClient
    from uphance_async.redis import RedisLimiter

    limiter = RedisLimiter("redis://127.0.0.1:6379/0", key="uphance:acme")
    async with UphanceClient(token=..., limiter=limiter) as client:
        ...

What lives in Redis (one hash, ``uphance-async:{key}``, and one of counters beside it): the send
schedule (GCRA: the earliest time the next request may go) and the adaptive state of
:mod:`uphance_async._ratelimit` (the rate measured at the last cut, the time of that cut, the
``Retry-After`` pause). Sends are reserved by a Lua script on Redis's own clock (``TIME``), so
the machines' clocks do not matter: one send per call while the budget is capped or unproven,
and, once the key has sent for a while without a 429, every call waiting in this process at
once. A 429 is decided in
Python by the same function as the in-process limiter's, and written back with a
compare-and-set script: when many processes see 429s of one episode, exactly one cut lands and
the others find their 429s already accounted for. ``max_in_flight`` stays per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._ratelimit import (
    WINDOW,
    Limiter,
    Queue,
    Shed,
    Throttle,
    after_429,
    checked_rate,
    rate_at,
    refusal,
    smoothed,
    too_early,
)
from .errors import RateLimiterError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisLimiter"]

logger = logging.getLogger("uphance_async")

_SLOT = 0.25  # seconds per counter of sends and 429s
_SLOTS = round(WINDOW / _SLOT)  # the counters that make the measuring window
_TTL = 3600  # seconds the state outlives the last request
# Not the peak a limiter remembers of its own share: a shared state is the whole budget's,
# which no other process's probe cuts.
_FIELDS = ("w_max", "slow_start", "last_cut", "paused_until", "paused_at", "hold")
_STATE = 1 + len(_FIELDS)  # the state's values in a script's answer: its version, then _FIELDS
_UNKNOWN = Throttle()  # the state of a key Redis has no field of (its defaults)
_RETRY_REDIS = 5.0  # seconds in local fallback before trying Redis again
_BATCH = 16  # sends one round trip may reserve before any 429
# Sends a round trip reserves beyond the calls waiting, for the calls about to come: as many as
# came in the last _SPARE_LIFE, within these bounds (an unused one still counts as sent).
_SPARE = 8
_MOST_SPARES = 64
_SPARE_LIFE = 0.02  # seconds a spare send stays valid (a pause elsewhere is noticed by then)
_WARM_UP = 2.0  # seconds of sends without a 429 before round trips reserve for several calls

# KEYS: the state hash, the counters hash. ARGV: seconds between sends (0: no cap), slot
# length, slots kept, TTL, sends wanted, warm-up seconds. Reserves consecutive send times: as
# many as wanted once the budget has taken this key's sends for the warm-up without a 429 and
# nothing is paused (every send is then "now"), else one, so that a caller who has not seen a
# cut or a pause yet reserves a single send under it, and a start against an unknown budget
# probes it one round trip at a time. Returns Redis's now, the state, then the send times.
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'paused_until', 'w_max', 'first_send')
local send = math.max(now, tonumber(state[2] or '-1e18'))
local interval = tonumber(ARGV[1])
local count = tonumber(ARGV[5])
local warm = now - tonumber(state[4] or tostring(now)) >= tonumber(ARGV[6])
if send > now or tonumber(state[3] or '0') > 0 or not warm then count = 1 end
if interval > 0 then
  send = math.max(send, tonumber(state[1] or '0'))
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', send + count * interval))
end
redis.call('HSETNX', KEYS[1], 'first_send', string.format('%.6f', send))
redis.call('EXPIRE', KEYS[1], ARGV[4])
local fields = redis.call('HMGET', KEYS[1], STATE_FIELDS)
local answer = {string.format('%.6f', now), unpack(fields, 1, STATE_COUNT)}
for i = 0, count - 1 do
  local at = send + i * interval
  local slot = math.floor(at / tonumber(ARGV[2]))
  redis.call('HINCRBY', KEYS[2], 's' .. slot, 1)
  redis.call('HDEL', KEYS[2], 's' .. (slot - 2 * ARGV[3]), 't' .. (slot - 2 * ARGV[3]))
  answer[#answer + 1] = string.format('%.6f', at)
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return answer
"""

# KEYS: the state hash, the counters hash. ARGV: the slot of a 429 to count ('' for none),
# slot length, slots kept. Returns Redis's now, the state, first_send and the window's counts.
_READ_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[1] ~= '' then redis.call('HINCRBY', KEYS[2], 't' .. ARGV[1], 1) end
local current = math.floor(now / tonumber(ARGV[2]))
local names = {}
for i = 0, tonumber(ARGV[3]) - 1 do
  names[#names + 1] = 's' .. (current - i)
  names[#names + 1] = 't' .. (current - i)
end
local counts = redis.call('HMGET', KEYS[2], unpack(names))
local fields = redis.call('HMGET', KEYS[1], STATE_FIELDS, 'first_send')
local answer = {string.format('%.6f', now)}
for i = 1, STATE_COUNT + 1 do answer[#answer + 1] = fields[i] or '' end
for i = 1, #counts do answer[#answer + 1] = counts[i] or '0' end
return answer
"""

# KEYS: the state hash. ARGV: the version read, then field/value pairs. Writes them only if
# nobody changed the state since it was read; 1 when written.
_WRITE = """
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'version', 1)
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


def _with_state(script: str) -> str:
    """``script`` reading the state's fields (``STATE_FIELDS``, ``STATE_COUNT`` of them) in the
    order :func:`_state` takes them."""
    names = ", ".join(f"'{name}'" for name in ("version", *_FIELDS))
    return script.replace("STATE_FIELDS", names).replace("STATE_COUNT", str(_STATE))


_ACQUIRE = _with_state(_ACQUIRE_SCRIPT)
_READ = _with_state(_READ_SCRIPT)


def _number(value: Any, default: float) -> float:
    if value in (None, b"", ""):
        return default
    return float(value)


def _state(values: list[Any]) -> tuple[str, Throttle]:
    """The version and state from the fields ``version``, then those of :data:`_FIELDS`."""
    version = values[0].decode() if isinstance(values[0], bytes) else str(values[0] or "0")
    fields: dict[str, Any] = {}
    for name, value in zip(_FIELDS, values[1:_STATE], strict=True):
        default = getattr(_UNKNOWN, name)  # a field Redis does not have
        number = _number(value, float(default))
        fields[name] = number == 1.0 if isinstance(default, bool) else number
    return version or "0", Throttle(**fields)


class RedisLimiter:
    """A :class:`~uphance_async.RateLimiter` whose budget lives in Redis under ``key``.

    ``redis`` is a ``redis.asyncio.Redis`` or a ``redis://`` URL. Every client using the same
    Redis and ``key`` shares one budget: a fixed ``rate`` (requests per second) as is, or with
    ``rate=None`` a rate that adapts to 429s once per episode across all of them. Choose the key
    by the scope of Uphance's budget for you (per user, organisation or token: nobody publishes
    which), e.g. ``"uphance:<organisation id>"``; never the token itself.
    ``max_in_flight`` caps requests in flight in this process.

    If Redis cannot be reached, requests fail with
    :class:`~uphance_async.errors.RateLimiterError`; with ``fallback="local"`` they go through
    an in-process limiter instead (and Redis is tried again every few seconds), never unthrottled:
    it holds the rate this process was sending at (its share of the shared budget) until Redis
    is back, so processes that fall back together stay within the budget.
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        key: str,
        rate: float | None = None,
        max_in_flight: int = 16,
        fallback: Literal["error", "local"] = "error",
    ) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"key must be a non-empty str naming the shared budget, not {key!r}")
        if fallback not in ("error", "local"):
            raise ValueError(f"fallback must be 'error' or 'local', not {fallback!r}")
        if isinstance(redis, str):
            from redis.asyncio import Redis as Client

            self._redis: Any = Client.from_url(
                redis, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        else:
            self._redis = redis
        self._url = redis if isinstance(redis, str) else None
        self.key = key
        self._keys = [f"uphance-async:{{{key}}}", f"uphance-async:{{{key}}}:counts"]
        self._fixed = checked_rate(rate)
        self._queue = Queue(max_in_flight)
        # asyncio's lock takes a free gate without a turn of the loop; anyio's would not.
        self._gate = asyncio.Lock()
        self._tickets: list[_Ticket] = []
        self._spares: deque[float] = deque()
        self._spares_until = -math.inf
        self._calls: deque[float] = deque()  # when calls came, over the last _SPARE_LIFE
        self._sends: deque[float] = deque()
        self._fallback = fallback
        self._local = Limiter(max_in_flight, rate, clock=self._now)
        self._local_until = -math.inf
        self._reached = True  # the last call to Redis worked: a failure begins an outage
        self._state = Throttle()
        self._offset = 0.0  # Redis's clock minus this machine's
        self._rtt = 0.0
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RedisLimiter(key={self.key!r}, rate={self._fixed!r})"

    @property
    def max_in_flight(self) -> int:
        """The cap on requests in flight in this process."""
        return self._queue.slots.total

    @property
    def rate(self) -> float | None:
        """The shared cap in requests per second, as of this process's last look at Redis
        (in the local fallback, the fallback's cap)."""
        if self._fixed is not None:
            return self._fixed
        if self._in_fallback():
            return self._local.rate
        return rate_at(self._state, self._now())

    def _now(self) -> float:
        return time.time() + self._offset

    def _script(self, source: str) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self._redis.register_script(source)
        return self._scripts[source]

    def sheds(self, deadline: float, after: float = 0.0) -> float | None:
        """As :meth:`Limiter.sheds` (``deadline`` on ``anyio.current_time()``'s clock); the
        expected wait is the shared pause left, then this process's queue at the shared rate
        (in the local fallback, the fallback's)."""
        state = self._local._state if self._in_fallback() else self._state
        rate = self.rate
        wait = max(0.0, state.paused_until - self._now())
        wait += self._queue.waiting / rate if rate else 0.0
        return refusal(anyio.current_time(), wait, deadline, after, state)

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float | None = None) -> AsyncIterator[float]:
        """Hold one of this process's places in flight, once the shared budget allows.

        With a ``deadline`` (``anyio.current_time()`` clock), a call that the shared pause and
        this process's queue at the shared rate would keep past it raises ``Shed`` at once.
        """
        if deadline is not None:
            wait = self.sheds(deadline)
            if wait is not None:
                raise Shed(wait)
        async with self._queue.place(self._reserve) as sent_at:
            try:
                yield sent_at
            finally:
                self._rtt = smoothed(self._rtt, self._now() - sent_at)

    async def _reserve(self) -> float:
        # In the local fallback, calls keep their places in this process's one queue, those
        # queued before Redis failed included, and the local limiter paces them.
        if self._in_fallback():
            return await self._fallback_reserve()
        # One round trip at a time per process. Under a shared cap it reserves one send and
        # waits for it, so a cut or a pause delays at most one request of each process that
        # reserved before it. Before any 429 every send is "now": one round trip then reserves
        # for every call waiting and as many more as came in the last 20 ms (8 to 64), which
        # the next calls take for the next 20 ms (Redis grants one in the first seconds of the
        # key, or if a cut or a pause came meanwhile), so calls arriving together or close
        # together share a round trip.
        self._calls.append(time.monotonic())
        spare = self._spare()
        if spare is not None:
            return spare
        ticket = _Ticket()
        self._tickets.append(ticket)
        async with self._gate:
            if ticket.send is None and self._in_fallback():
                # Redis failed while this call waited: no round trip of its own to fail.
                self._tickets.remove(ticket)
                ticket.send = math.nan
            if ticket.send is None:
                self._tickets.remove(ticket)
                paced = self.rate is not None
                batch = [ticket] if paced else [ticket, *self._tickets[: _BATCH - 1]]
                del self._tickets[: len(batch) - 1]
                try:
                    sends = await self._reserve_many(
                        len(batch) + (0 if paced else self._spares_wanted())
                    )
                except BaseException:
                    # Cancelled or failed: the others of the batch wait for another round trip.
                    self._tickets[:0] = batch[1:]
                    raise
                for waiting, reserved in zip(batch, sends, strict=False):
                    waiting.send = reserved
                self._tickets[:0] = batch[len(sends) :]
                self._keep_spares(sends[len(batch) :])
                if paced:
                    await self._until(sends[0])
        send = ticket.send
        assert send is not None  # filled by this call's round trip or an earlier one
        if math.isnan(send):
            return await self._fallback_reserve()
        await self._until(send)
        return send

    def _keep_spares(self, sends: list[float]) -> None:
        """Hand the sends reserved beyond the batch to the calls that queued meanwhile, and
        keep the rest for the next calls, for a moment only: they were granted because nothing
        was capped or paused, which a 429 anywhere may change."""
        if not sends or math.isnan(sends[0]):
            return
        spares = deque(sends)
        while spares and self._tickets:
            self._tickets.pop(0).send = spares.popleft()
        self._spares = spares
        self._spares_until = time.monotonic() + _SPARE_LIFE

    def _spares_wanted(self) -> int:
        """Spares for the next round trip: the calls of the last moment, which the next
        moment likely brings again (a busy process then makes fewer round trips)."""
        now = time.monotonic()
        calls = self._calls
        while calls and calls[0] < now - _SPARE_LIFE:
            calls.popleft()
        return max(_SPARE, min(_MOST_SPARES, len(calls)))

    def _spare(self) -> float | None:
        """A send reserved ahead, if one is still valid (and no cap was seen since): the time
        it is taken, on Redis's clock (it is counted in the slot it was reserved for)."""
        if self._spares and time.monotonic() < self._spares_until and self.rate is None:
            self._spares.popleft()
            return self._now()
        self._spares.clear()
        return None

    async def _reserve_many(self, count: int) -> list[float]:
        """Up to ``count`` consecutive send times from Redis (``count`` NaNs when it failed)."""
        rate = self.rate
        interval = 1.0 / rate if rate is not None else 0.0
        answer = await self._call(
            _ACQUIRE, self._keys, [f"{interval:.9f}", _SLOT, _SLOTS, _TTL, count, _WARM_UP]
        )
        if answer is None:
            return [math.nan] * count
        now = float(answer[0])
        self._offset = now - time.time()
        _, self._state = _state(answer[1 : 1 + _STATE])
        sends = [float(value) for value in answer[1 + _STATE :]]
        self._sends.extend(sends)
        while self._sends and self._sends[0] < now - WINDOW:
            self._sends.popleft()
        return sends

    async def _until(self, send: float) -> None:
        """Sleep until ``send`` on Redis's clock."""
        wait = send - self._now()
        if wait > 0:
            await anyio.sleep(wait)

    async def _fallback_reserve(self) -> float:
        async with self._local.slot() as sent_at:
            return sent_at

    def _own_share(self) -> float | None:
        """This process's send rate over the last seconds before Redis failed: its share of
        the shared budget, which the local fallback keeps to (``None``: it was not sending)."""
        if not self._sends:
            return None
        now = self._now()
        span = min(WINDOW, now - self._sends[0])
        recent = sum(1 for sent in self._sends if sent >= now - WINDOW)
        # A pause in the window sent nothing, and says nothing of the share.
        pause = self._state
        paused = min(now, pause.paused_until) - max(now - span, pause.paused_at)
        span = max(_SLOT, span - max(0.0, paused))
        return recent / span if recent else None

    async def accepted(self, sent_at: float) -> None:
        """Nothing to do: Redis counts sends, and accepted ones are sends minus 429s."""
        if self._in_fallback():
            await self._local.accepted(sent_at)

    async def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: pause everyone for ``retry_after``; cut the shared rate once per episode."""
        self._spares.clear()
        if self._in_fallback():
            await self._local.throttled(sent_at, retry_after)
            return
        count: object = math.floor(sent_at / _SLOT)
        for _ in range(10):  # a conflict means another process decided meanwhile: look again
            answer = await self._call(_READ, self._keys, [count, _SLOT, _SLOTS])
            if answer is None:
                await self._local.throttled(sent_at, retry_after)
                return
            count = ""
            now = float(answer[0])
            version, state = _state(answer[1 : 1 + _STATE])
            first_send = _number(answer[1 + _STATE], now)
            counts = [int(value) for value in answer[2 + _STATE :]]
            decided = after_429(
                state,
                now=now,
                sent_at=sent_at,
                retry_after=retry_after,
                adaptive=self._fixed is None,
                rtt=self._rtt,
                accepted=functools.partial(_accepted_rate, counts, now, first_send),
                accepted_count=sum(counts[0::2]) - sum(counts[1::2]),
                shared=True,
            )
            if decided == state:
                self._state = state
                return
            changes = [item for name in _FIELDS for item in (name, _encode(getattr(decided, name)))]
            if await self._call(_WRITE, self._keys[:1], [version, *changes]):
                self._state = decided
                return

    async def _call(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script; ``None`` when Redis failed and the local fallback takes over."""
        from redis.exceptions import RedisError

        try:
            answer = await self._script(source)(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            if self._fallback != "local":
                raise RateLimiterError(
                    f"the shared rate limiter (Redis, key {self.key!r}) cannot be reached: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            logger.warning(
                "Redis for the shared rate limit %r failed (%s); limiting in this process "
                "for %.0f s",
                self.key,
                exc,
                _RETRY_REDIS,
            )
            if self._reached:
                # Every process falls back to what it was getting, and holds it for the
                # whole outage (the tries to reach Redis again that fail change nothing):
                # together they stay within the shared budget instead of each probing for
                # all of it. One that was not sending adapts on its own.
                self._reached = False
                self._local.hold(self._own_share())
            self._local_until = time.monotonic() + _RETRY_REDIS
            return None
        self._reached = True
        return answer

    def _in_fallback(self) -> bool:
        return time.monotonic() < self._local_until

    async def aclose(self) -> None:
        """Close the Redis connection this limiter made from a URL (a given client is kept)."""
        if self._url is not None:
            await self._redis.aclose()


class _Ticket:
    """A call waiting for its send time; whoever reserves next may reserve for it too."""

    __slots__ = ("send",)

    def __init__(self) -> None:
        self.send: float | None = None


def _encode(value: float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return f"{value:.6f}"


def _accepted_rate(counts: list[int], now: float, first_send: float, window: float) -> float | None:
    """Accepted requests per second over ``window`` from the per-slot counts (newest first,
    sends and 429s interleaved); ``None`` when sending began too recently to tell."""
    if too_early(now, first_send):
        return None
    # The newest counter is still filling: the window is made of those before it.
    slots = max(1, min(_SLOTS - 1, round(window / _SLOT)))
    span = min(slots * _SLOT, now - first_send)
    sends, refused = counts[2 : 2 + 2 * slots : 2], counts[3 : 3 + 2 * slots : 2]
    return max(0, sum(sends) - sum(refused)) / max(span, _SLOT)
