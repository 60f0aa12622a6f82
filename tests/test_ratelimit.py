"""The limiter's logic on a fake clock: fixed rates, the adaptive cut and the CUBIC climb."""

from __future__ import annotations

import itertools

import pytest

from uphance_async._ratelimit import Limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def send(limiter: Limiter, count: int) -> list[float]:
    times = []
    for _ in range(count):
        async with limiter.slot() as sent_at:
            times.append(sent_at)
    return times


async def test_a_fixed_rate_spaces_requests_and_never_adapts() -> None:
    clock = FakeClock()
    limiter = Limiter(4, rate=10.0, clock=clock, sleep=clock.sleep)
    times = await send(limiter, 6)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.1] * 5
    limiter.throttled(times[-1], retry_after=None)
    assert limiter.rate == 10.0


async def test_without_a_rate_nothing_waits_until_a_429() -> None:
    clock = FakeClock()
    limiter = Limiter(4, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        await send(limiter, 1)
        clock.now += 0.05  # 20 requests a second
    assert limiter.rate is None
    assert clock.slept == []
    limiter.throttled(clock.now - 0.01, retry_after=None)
    assert limiter.rate == pytest.approx(0.7 * 20, rel=0.1)


async def test_retry_after_pauses_every_request() -> None:
    clock = FakeClock()
    limiter = Limiter(4, clock=clock, sleep=clock.sleep)
    limiter.throttled(clock.now, retry_after=2.0)
    (sent_at,) = await send(limiter, 1)
    assert sent_at >= 102.0


async def test_one_cut_per_throttling_episode() -> None:
    clock = FakeClock()
    limiter = Limiter(8, rate=None, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        await send(limiter, 1)
        clock.now += 0.05
    in_flight_before_cut = clock.now - 0.02
    limiter.throttled(in_flight_before_cut, retry_after=None)
    first = limiter.rate
    assert first is not None
    limiter.throttled(in_flight_before_cut, retry_after=None)
    assert limiter.rate == pytest.approx(first)
    clock.now += 0.01
    limiter.throttled(clock.now, retry_after=None)
    second = limiter.rate
    assert second is not None
    assert second < first


async def test_the_rate_climbs_back_and_then_probes_beyond() -> None:
    clock = FakeClock()
    limiter = Limiter(8, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        await send(limiter, 1)
        clock.now += 0.05
    limiter.throttled(clock.now, retry_after=None)
    cut = limiter.rate
    assert cut is not None
    rates = []
    for _ in range(10):
        clock.now += 1.0
        rate = limiter.rate
        assert rate is not None
        rates.append(rate)
    assert rates == sorted(rates)
    assert rates[0] > cut
    assert rates[-1] > 20.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        Limiter(0)
    with pytest.raises(ValueError, match="rate_limit"):
        Limiter(1, rate=-1)
