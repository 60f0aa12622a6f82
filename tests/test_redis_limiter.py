"""RedisLimiter against a real Redis server on 127.0.0.1: one budget for many clients."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any

import pytest

from uphance_async import RateLimiter, RetryPolicy, UphanceClient
from uphance_async.errors import RateLimiterError
from uphance_async.redis import RedisLimiter
from uphance_async.testing import FakeUphance


@pytest.fixture
async def key(request: pytest.FixtureRequest) -> str:
    return f"test:{request.node.name}:{time.time_ns()}"


@pytest.fixture
async def limiters(redis_url: str) -> AsyncIterator[list[RedisLimiter]]:
    made: list[RedisLimiter] = []
    yield made
    for limiter in made:
        await limiter.aclose()


def make(made: list[RedisLimiter], url: str, key: str, **options: Any) -> RedisLimiter:
    limiter = RedisLimiter(url, key=key, **options)
    made.append(limiter)
    return limiter


async def sends(limiter: RedisLimiter, count: int) -> list[float]:
    times = []
    for _ in range(count):
        async with limiter.slot() as sent_at:
            times.append(sent_at)
    return times


def test_importing_the_package_leaves_redis_alone() -> None:
    code = "import sys, uphance_async; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_a_fixed_rate_is_shared_by_every_limiter_of_the_key(
    redis_url: str, key: str, limiters: list[RedisLimiter]
) -> None:
    one, two = (make(limiters, redis_url, key, rate=20.0) for _ in range(2))
    assert isinstance(one, RateLimiter)
    first, second = await asyncio.gather(sends(one, 10), sends(two, 10))
    times = sorted(first + second)
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) >= 0.05 - 1e-3
    assert times[-1] - times[0] == pytest.approx(19 / 20, abs=0.02)
    other = make(limiters, redis_url, key + ":other", rate=20.0)
    started = time.monotonic()
    await sends(other, 2)
    assert time.monotonic() - started < 0.2  # another key, another budget


async def test_a_pause_is_shared(redis_url: str, key: str, limiters: list[RedisLimiter]) -> None:
    one, two = (make(limiters, redis_url, key) for _ in range(2))
    (sent,) = await sends(one, 1)
    await one.throttled(sent, retry_after=0.5)
    (later,) = await sends(two, 1)
    assert later - sent >= 0.45


async def test_one_cut_per_episode_across_limiters(
    redis_url: str, key: str, limiters: list[RedisLimiter]
) -> None:
    import redis.asyncio

    group = [make(limiters, redis_url, key) for _ in range(4)]
    sent: list[float] = []
    for limiter in group:
        sent += await sends(limiter, 20)
    await asyncio.sleep(0.6)  # long enough to measure a rate
    await asyncio.gather(
        *(limiter.throttled(max(sent), None) for limiter in group for _ in range(5))
    )
    state = redis.asyncio.Redis.from_url(redis_url)
    try:
        version = await state.hget(f"uphance-async:{{{key}}}", "version")
    finally:
        await state.aclose()
    assert version == b"1"
    rates = {limiter.rate for limiter in group}
    assert None not in rates
    (fresh,) = await sends(group[0], 1)
    await asyncio.gather(*(limiter.throttled(fresh, None) for limiter in group))
    assert group[0].rate is not None


async def test_unreachable_redis_is_a_typed_error_or_the_local_fallback(
    unreachable_url: str, limiters: list[RedisLimiter]
) -> None:
    dead = unreachable_url.replace("http://", "redis://") + "/0"
    async with FakeUphance(customers=20) as server:
        strict = make(limiters, dead, "k")
        async with UphanceClient(token=server.token, base_url=server.url, limiter=strict) as c:
            with pytest.raises(RateLimiterError, match="cannot be reached"):
                await c.customers.get(server.ids()[0])
        assert server.requests == []
        lenient = make(limiters, dead, "k", fallback="local", rate=50.0)
        async with UphanceClient(token=server.token, base_url=server.url, limiter=lenient) as c:
            for wanted in server.ids()[:3]:
                assert (await c.customers.get(wanted)).id == wanted
        assert len(server.requests) == 3


def test_limiter_arguments_are_checked(redis_url: str) -> None:
    with pytest.raises(ValueError, match="key"):
        RedisLimiter(redis_url, key=" ")
    with pytest.raises(ValueError, match="fallback"):
        RedisLimiter(redis_url, key="k", fallback="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        RedisLimiter(redis_url, key="k", rate=0)
    with pytest.raises(TypeError, match="limiter"):
        UphanceClient(token="t", limiter=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate_limit"):
        UphanceClient(token="t", limiter=RedisLimiter(redis_url, key="k"), rate_limit=5)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from uphance_async import RetryPolicy, UphanceClient
    from uphance_async.redis import RedisLimiter

    url, token, redis_url, key, seconds, first = sys.argv[1:7]
    async def main():
        counts = {"ok": 0, "throttled": 0}
        def count(event):
            if event.status == 200:
                counts["ok"] += 1
            elif event.throttled:
                counts["throttled"] += 1
        limiter = RedisLimiter(redis_url, key=key)
        client = UphanceClient(token=token, base_url=url, limiter=limiter, on_request=count,
                               retry=RetryPolicy(max_attempts=30, max_retry_after=2))
        deadline = time.monotonic() + float(seconds)
        async def caller():
            while time.monotonic() < deadline:
                await client.customers.get(int(first))
        async with client:
            await asyncio.gather(*(caller() for _ in range(30)))
        await limiter.aclose()
        print(json.dumps(counts))
    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_processes_sharing_a_key_stay_within_the_servers_budget(
    redis_url: str, key: str, thread_served: Callable[[FakeUphance], FakeUphance]
) -> None:
    server = thread_served(FakeUphance(customers=10, rate_limit=20, rate_burst=5))
    seconds = 4.0
    argv = [server.url, server.token, redis_url, key, str(seconds), str(server.ids()[0])]
    started = time.monotonic()
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, *argv], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    elapsed = time.monotonic() - started
    ok = sum(r["ok"] for r in results)
    throttled = sum(r["throttled"] for r in results)
    assert all(worker.returncode == 0 for worker in workers)
    assert ok <= 20 * elapsed + 5  # what the server let through, at most
    assert throttled == server.throttled
    # The first burst, before any 429 came back, is most of them: up to 16 in flight a process.
    assert throttled <= 3 * 16 + 10, results
    assert throttled / (ok + throttled) < 0.25, results
    assert ok >= 20  # every process got through


async def test_a_client_with_a_redis_limiter_streams(
    redis_url: str, key: str, limiters: list[RedisLimiter]
) -> None:
    async with FakeUphance(customers=250, page_size=25) as server:
        limiter = make(limiters, redis_url, key, rate=200.0, max_in_flight=4)
        client = UphanceClient(
            token=server.token, base_url=server.url, limiter=limiter, retry=RetryPolicy()
        )
        async with client:
            ids = [c.id async for c in client.customers.stream(status="all")]
            assert client.rate_limit == 200.0
        assert ids == server.ids("all")
        assert server.max_in_flight <= 4


async def test_the_local_fallback_keeps_this_process_s_share(
    redis_url: str, key: str, limiters: list[RedisLimiter], unreachable_url: str
) -> None:
    from redis.asyncio import Redis

    limiter = make(limiters, redis_url, key, fallback="local")
    for _ in range(16):  # about 20 requests a second: this process's share
        async with limiter.slot():
            pass
        await asyncio.sleep(0.05)
    assert limiter.rate is None  # no 429 yet: no shared cap
    share = limiter._own_share()
    assert share == pytest.approx(18, rel=0.35)
    healthy = limiter._redis
    limiter._redis = Redis.from_url(unreachable_url.replace("http://", "redis://") + "/0")
    limiter._scripts.clear()
    try:
        started = time.monotonic()
        for _ in range(10):
            async with limiter.slot():
                pass
        elapsed = time.monotonic() - started
        # All of the share, not less: together the processes go on at the rate they shared
        # (measured a moment later than the share above, so a little lower).
        assert limiter.rate == pytest.approx(share, rel=0.05)
        held = limiter.rate
        limiter._local_until = -math.inf  # time to try Redis again: it fails again
        async with limiter.slot():
            pass
        assert limiter._in_fallback()
        assert limiter.rate == held  # the share is held for the whole outage
    finally:
        await limiter._redis.aclose()
        limiter._redis = healthy
    assert elapsed >= 9 / 30  # spaced at its share, not sent at once


async def _round_trips(limiter: RedisLimiter, calls: int, together: bool = True) -> int:
    """Script calls made by ``calls`` sends through ``limiter``, concurrent or one by one."""
    made = 0
    script = limiter._script

    def counted(source: str) -> Any:
        run = script(source)

        async def call(**arguments: Any) -> Any:
            nonlocal made
            made += 1
            return await run(**arguments)

        return call

    limiter._script = counted  # type: ignore[method-assign]
    try:
        if together:
            await asyncio.gather(*(sends(limiter, 1) for _ in range(calls)))
        else:
            await sends(limiter, calls)
    finally:
        del limiter._script
    return made


async def test_calls_arriving_together_share_a_round_trip_once_the_budget_proved_room(
    redis_url: str, key: str, limiters: list[RedisLimiter]
) -> None:
    import redis.asyncio

    limiter = make(limiters, redis_url, key)
    # The key's first seconds probe an unknown budget one send per round trip.
    assert await _round_trips(limiter, 8) == 8
    state = redis.asyncio.Redis.from_url(redis_url)
    try:
        await state.hset(f"uphance-async:{{{key}}}", "first_send", f"{time.time() - 5:.6f}")
        assert await _round_trips(limiter, 8) < 8
        # A round trip also reserves a few sends ahead, for the calls that come next.
        assert await _round_trips(limiter, 8, together=False) <= 2
        # Once anybody was throttled, every send is paced: one per round trip again, even for
        # a process that has not seen the cut yet (Redis grants it a single send).
        stale = make(limiters, redis_url, key)
        await state.hset(f"uphance-async:{{{key}}}", mapping={"w_max": "1000", "last_cut": "1"})
        assert stale.rate is None
        assert await _round_trips(stale, 4) == 4
    finally:
        await state.aclose()


async def test_calls_queued_when_redis_fails_keep_their_places_in_the_fallback(
    redis_url: str, key: str, limiters: list[RedisLimiter], unreachable_url: str
) -> None:
    from redis.asyncio import Redis

    limiter = make(limiters, redis_url, key, fallback="local", rate=40.0, max_in_flight=2)
    order: list[str] = []

    async def call(name: str) -> None:
        async with limiter.slot():
            order.append(name)
            await asyncio.sleep(0.01)

    queued = [asyncio.ensure_future(call("queued")) for _ in range(12)]
    await asyncio.sleep(0.03)  # a few sent through Redis, the rest waiting in this process
    healthy = limiter._redis
    limiter._redis = Redis.from_url(unreachable_url.replace("http://", "redis://") + "/0")
    limiter._scripts.clear()
    try:
        await asyncio.sleep(0.03)  # Redis fails under a waiting call: the fallback begins
        later = [asyncio.ensure_future(call("later")) for _ in range(6)]
        await asyncio.gather(*queued, *later)
    finally:
        await limiter._redis.aclose()
        limiter._redis = healthy
    # First come, first served across the fallback: no call that arrived after it overtook
    # the calls that had waited since before.
    assert order == ["queued"] * 12 + ["later"] * 6


def test_the_share_kept_in_the_fallback_leaves_a_shared_pause_out(redis_url: str, key: str) -> None:
    from uphance_async._ratelimit import Throttle

    limiter = RedisLimiter(redis_url, key=key, fallback="local")
    now = time.time()
    # 20 sends a second, then a one-second Retry-After pause of the whole budget.
    limiter._sends.extend(now - 2.0 + n / 20 for n in range(20))
    limiter._state = Throttle(paused_at=now - 1.0, paused_until=now)
    assert limiter._own_share() == pytest.approx(20.0, rel=0.1)


def test_a_busy_process_reserves_more_sends_ahead(redis_url: str, key: str) -> None:
    """As many as the calls of the last 20 ms, 8 to 64: fewer round trips when busy."""
    limiter = RedisLimiter(redis_url, key=key)
    assert limiter._spares_wanted() == 8
    now = time.monotonic()
    limiter._calls.extend([now] * 40)
    assert limiter._spares_wanted() == 40
    limiter._calls.extend([now] * 100)
    assert limiter._spares_wanted() == 64
    limiter._calls.clear()
    limiter._calls.extend([now - 1.0] * 40)  # calls of a moment long gone
    assert limiter._spares_wanted() == 8


def test_sends_reserved_ahead_are_dropped_once_a_cap_is_seen(redis_url: str, key: str) -> None:
    from uphance_async._ratelimit import Throttle

    limiter = RedisLimiter(redis_url, key=key)
    limiter._keep_spares([time.time()] * 3)
    assert limiter._spare() is not None
    limiter._state = Throttle(w_max=40.0, last_cut=time.time())  # another process cut it
    assert limiter._spare() is None
    limiter._state = Throttle()
    assert limiter._spare() is None  # dropped, not kept for later
