"""The in-process limiter on a fake clock: fixed rates, one cut per episode, the climb, pauses."""

from __future__ import annotations

import itertools

import anyio
import attrs
import pytest

from uphance_async._ratelimit import Limiter, Throttle, after_429, rate_at


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
        await limiter.accepted(sent_at)
    return times


async def steady(limiter: Limiter, clock: FakeClock, per_second: float, seconds: float) -> None:
    """Requests accepted at ``per_second`` for ``seconds``."""
    for _ in range(int(per_second * seconds)):
        await send(limiter, 1)
        clock.now += 1 / per_second


async def test_a_fixed_rate_spaces_requests_and_never_adapts() -> None:
    clock = FakeClock()
    limiter = Limiter(4, rate=10.0, clock=clock, sleep=clock.sleep)
    times = await send(limiter, 6)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.1] * 5
    await limiter.throttled(times[-1], retry_after=None)
    assert limiter.rate == 10.0


async def test_without_a_rate_nothing_waits_until_a_429() -> None:
    clock = FakeClock()
    limiter = Limiter(4, clock=clock, sleep=clock.sleep)
    await steady(limiter, clock, 20, 2.0)
    assert limiter.rate is None
    assert clock.slept == []
    await limiter.throttled(clock.now - 0.01, retry_after=None)
    assert limiter.rate == pytest.approx(0.7 * 20, rel=0.1)


async def test_a_429_at_once_starts_low_and_doubles_until_the_next() -> None:
    clock = FakeClock()
    limiter = Limiter(4, clock=clock, sleep=clock.sleep)
    sent = await send(limiter, 10)  # a burst the server absorbed
    clock.now += 0.01
    await limiter.throttled(sent[-1], retry_after=None)
    start = limiter.rate
    assert start is not None
    assert start == pytest.approx(10 / 0.5)  # the burst, as if over the measuring window
    clock.now += 1.0
    assert limiter.rate == pytest.approx(4 * start)


def test_a_cut_ending_a_slow_start_or_a_probe_is_measured_over_all_of_it() -> None:
    # Each begins with the server's bucket full (a pause, or a plateau below the budget, let it
    # refill): their last half second released that bucket too (68/s against 50), the whole
    # of them much less.
    windows: list[float] = []

    def accepted(window: float) -> float:
        windows.append(window)
        return 68.0 if window == 0.5 else 51.0

    def measured(state: Throttle, now: float) -> float:
        decided = after_429(
            state,
            now=now,
            sent_at=now - 0.01,
            retry_after=1.0,
            adaptive=True,
            rtt=0.01,
            accepted=accepted,
            accepted_count=60,
        )
        # The plateau it resumes on when the server's pause ends.
        return rate_at(decided, now + 1.0) or 0.0

    slow = Throttle(w_max=20.0, slow_start=True, last_cut=0.0, paused_at=0.0, paused_until=1.0)
    assert measured(slow, 2.1) == pytest.approx(51.0)
    held = Throttle(w_max=50.0, last_cut=0.0)  # 45/s from 2 s, probing from 12 s
    assert measured(held, 13.9) == pytest.approx(0.9 * 51.0)
    assert measured(held, 30.0) == pytest.approx(0.9 * 51.0)  # at most the last two seconds
    # On the plateau: the last half second, and the cap.
    assert measured(held, 6.0) == pytest.approx(0.9 * 45.0)
    assert windows == [pytest.approx(1.1), pytest.approx(1.9), 2.0, 0.5]


def test_a_slow_start_sets_its_plateau_at_the_rate_it_measured() -> None:
    # Its window averages the climb from well below the budget (20/s, doubling), which offsets
    # the burst a plateau at 90 % of the measure allows for: 46/s measured against a budget of
    # 50 is held as it is, where 90 % of it held 0.83 of the budget until a probe 10 s later.
    slow = Throttle(w_max=20.0, slow_start=True, last_cut=0.0, paused_at=0.0, paused_until=1.0)
    decided = cut(slow, 2.2, 46.0)
    assert not decided.slow_start
    assert rate_at(decided, 2.2 + 2.0) == pytest.approx(46.0)
    assert rate_at(decided, 2.2 + 11.0) == pytest.approx(46.0)  # held, then probed
    # Later cuts still keep 90 % of what they measure: their half second holds the burst.
    assert rate_at(cut(decided, 20.0, 50.0), 20.0 + 3.0) == pytest.approx(45.0)


async def test_a_first_429_with_nothing_accepted_starts_where_a_first_window_would() -> None:
    # Processes starting together: the one whose first window the server's bucket took
    # starts slow start from it, and so does one that found the bucket already empty.
    clock = FakeClock()
    limiter = Limiter(8, clock=clock, sleep=clock.sleep)
    async with limiter.slot() as sent_at:
        clock.now += 0.01
    await limiter.throttled(sent_at, retry_after=None)
    assert limiter.rate == pytest.approx(8 / 0.5)


async def test_retry_after_pauses_every_request_then_they_leave_spaced() -> None:
    clock = FakeClock()
    limiter = Limiter(8, rate=10.0, clock=clock, sleep=clock.sleep)
    await limiter.throttled(clock.now, retry_after=2.0)
    times: list[float] = []

    async def one() -> None:
        times.extend(await send(limiter, 1))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(one)
    assert min(times) >= 102.0
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(sorted(times))]
    assert gaps == [0.1] * 4


async def test_one_cut_per_throttling_episode() -> None:
    clock = FakeClock()
    limiter = Limiter(8, clock=clock, sleep=clock.sleep)
    await steady(limiter, clock, 20, 2.0)
    in_flight_before_cut = clock.now - 0.02
    await limiter.throttled(in_flight_before_cut, retry_after=None)
    first = limiter.rate
    assert first is not None
    for _ in range(20):  # the other callers' 429s of the same episode
        await limiter.throttled(in_flight_before_cut, retry_after=None)
    clock.now += 0.01
    await limiter.throttled(clock.now, retry_after=None)  # sent after, but within a round trip
    assert limiter.rate == pytest.approx(first, rel=0.01)
    clock.now += 0.5
    await steady(limiter, clock, 10, 1.0)
    await limiter.throttled(clock.now, retry_after=None)
    second = limiter.rate
    assert second is not None
    assert second < first


async def test_the_rate_climbs_holds_then_probes_beyond() -> None:
    state = Throttle(w_max=50.0, last_cut=0.0)
    assert rate_at(state, 0.0) == pytest.approx(35.0)
    climb = [rate_at(state, t / 4) or 0.0 for t in range(9)]
    assert climb == sorted(climb)
    assert rate_at(state, 2.0) == pytest.approx(45.0)
    assert rate_at(state, 11.0) == pytest.approx(45.0)  # held below what the server accepted
    probing = [rate_at(state, 12.0 + t) or 0.0 for t in range(0, 13, 2)]
    assert probing[1] == pytest.approx(45.0 * (1 + 0.05 * 2 + (2 / 6) ** 3) + 0.4 * 2**3)
    steps = [b - a for a, b in itertools.pairwise(probing)]
    assert steps == sorted(steps)  # slow near the last 429, then faster and faster
    assert probing[-1] > 3 * 45.0  # room found within seconds
    paused = Throttle(w_max=50.0, last_cut=0.0, paused_until=1.0)
    assert rate_at(paused, 0.5) == pytest.approx(45.0)  # the server's pause was the cut
    assert rate_at(paused, 11.0) == pytest.approx(45.0)  # held, counted from the pause's end
    assert rate_at(paused, 13.0) == pytest.approx(45.0 * (1 + 0.05 * 2 + (2 / 6) ** 3) + 3.2)


def cut(state: Throttle, now: float, accepted: float, *, shared: bool = False) -> Throttle:
    """``state`` after a 429 at ``now`` for a request sent just before, ``accepted``/s having
    been let through over the measuring window."""
    return after_429(
        state,
        now=now,
        sent_at=now - 0.1,
        retry_after=None,
        adaptive=True,
        rtt=0.01,
        accepted=lambda window: accepted,
        accepted_count=int(2 * accepted),
        shared=shared,
    )


def test_a_429_while_holding_ends_the_hold_and_one_ending_a_probe_lengthens_it() -> None:
    held = Throttle(w_max=40.0, last_cut=0.0)  # 36/s from 2 s, probing from 12 s
    assert cut(held, 6.0, 36.0).hold == 0.0  # others share the budget, and probe
    assert cut(held, 1.0, 30.0).hold == 0.0  # while it climbed, too
    shortened = attrs.evolve(held, hold=0.0)
    assert cut(shortened, 2.3, 36.0).hold == 0.0  # barely above its plateau: not its probe
    assert cut(shortened, 4.0, 40.0).hold == 10.0  # its own probe found the edge
    # A RedisLimiter's state is the whole budget's: no other limiter probes it.
    assert cut(held, 6.0, 36.0, shared=True).hold == 10.0
    slow = Throttle(w_max=16.0, slow_start=True, last_cut=0.0, hold=3.0)
    # Slow start ending says nothing of sharing: the hold is its plateau's (10 s from 20/s).
    assert cut(slow, 2.0, 30.0).hold == 10.0


def test_a_small_plateau_is_held_for_less_time_than_a_large_one() -> None:
    # A limiter left with a small share of a budget that others also probe finds its room
    # again sooner: the hold grows as the cube root of the plateau, up to ten seconds from
    # 20/s, where a limiter alone still pays a pause per probe only every ten seconds or so.
    large = Throttle(w_max=40.0, last_cut=0.0, hold=0.0)
    assert cut(large, 4.0, 40.0).hold == 10.0  # its own probe, from a plateau of 36/s
    small = Throttle(w_max=4.0, last_cut=0.0, hold=0.0)
    decided = cut(small, 4.0, 4.0)  # its own probe too, from a plateau of 3.6/s
    assert decided.hold == pytest.approx(10.0 * (3.6 / 20.0) ** (1 / 3))  # 5.6 s
    assert rate_at(decided, 4.0 + 2.0 + 5.6) == pytest.approx(3.6)  # still held
    assert (rate_at(decided, 4.0 + 2.0 + 7.0) or 0.0) > 4.0  # probing
    # A RedisLimiter's state is the whole budget's, whatever this process's share of it.
    assert cut(Throttle(w_max=4.0, last_cut=0.0), 4.0, 4.0, shared=True).hold == 10.0


def test_one_cut_keeps_at_least_half_the_plateau() -> None:
    # At 9/s, half a second holds four or five sends: a 429 among them, and a measure that
    # found none accepted, must not cut a share to nothing.
    decided = cut(Throttle(w_max=10.0, last_cut=0.0), 5.0, 0.0)
    assert decided.w_max == pytest.approx(4.5)
    # Half the plateau, not half the cap a long probe reached far above what was sent.
    assert cut(Throttle(w_max=10.0, last_cut=0.0), 60.0, 8.0).w_max == pytest.approx(8.0)


def test_a_small_share_regains_as_many_requests_per_second_as_a_large_one() -> None:
    # Cut to a tenth of 40/s by 429s that others' probes caused, with no rate held before.
    state = Throttle(w_max=4.0, last_cut=0.0, hold=0.0)
    # No hold, and a probe whose convex term is in requests/s: back to 0.8 of 40/s 6.2 s
    # after the cut (4.2 s once its climb to the plateau is over).
    assert (rate_at(state, 6.2) or 0.0) >= 32.0
    large = Throttle(w_max=40.0, last_cut=0.0, hold=0.0)
    for seconds in (2.0, 3.0, 4.0):
        at = 2.0 + seconds
        small_gain = (rate_at(state, at) or 0.0) - 0.9 * state.w_max
        large_gain = (rate_at(large, at) or 0.0) - 36.0
        assert small_gain >= 0.4 * seconds**3
        assert small_gain / large_gain > 0.4  # growth in proportion would give 0.1


def deep_cut() -> Throttle:
    """36/s held for six seconds, then cut to a tenth of 40/s by 429s others caused."""
    state = Throttle(w_max=40.0, last_cut=0.0)
    now = 8.0
    while state.w_max > 4.0:
        state = cut(state, now, 4.0)
        now += 3.0
    return state


def test_a_deep_cut_doubles_back_to_the_rate_it_held() -> None:
    state = deep_cut()
    last = state.last_cut
    assert state.hold == 0.0
    assert state.peak == pytest.approx(36.0)  # what was held, remembered from the first cut
    assert (rate_at(state, last + 2.5) or 0.0) == pytest.approx(7.2)  # its climb, then doubling
    assert (rate_at(state, last + 3.0) or 0.0) == pytest.approx(14.4)
    # 0.8 of the budget 3.8 s after the last cut, then the probe above what it held.
    assert (rate_at(state, last + 3.8) or 0.0) >= 32.0
    assert (rate_at(state, last + 8.0) or 0.0) > 40.0
    # A Retry-After pause already let the server's bucket refill: doubling starts when it ends.
    paused = attrs.evolve(state, paused_at=last, paused_until=last + 1.0)
    assert (rate_at(paused, last + 1.0 + 1.8) or 0.0) >= 32.0
    # Without that memory, the convex probe alone takes 6.2 s (above).
    assert (rate_at(attrs.evolve(state, peak=0.0), last + 3.7) or 0.0) < 8.0


def test_the_peak_is_a_rate_held_and_fades() -> None:
    held = Throttle(w_max=40.0, last_cut=0.0)
    # A 429 one second into the plateau: no rate was held long enough to remember.
    assert cut(held, 3.0, 4.0).peak == 0.0
    # A probe's top is not remembered, only what the server let through meanwhile.
    probing = Throttle(w_max=10.0, last_cut=0.0, hold=0.0)  # 9/s, probing from 2 s
    assert (rate_at(probing, 7.0) or 0.0) > 50.0
    assert cut(probing, 7.0, 12.0).peak == pytest.approx(12.0)
    # Remembered less and less: half of it a minute later. A plateau far below what is
    # remembered is not held; one no longer far below it is held as any other.
    state = deep_cut()
    assert state.peak_at == 8.0
    soon = attrs.evolve(state, w_max=10.0, last_cut=18.0)  # 9/s, probing from 20 s
    assert cut(soon, 30.0, 10.0).hold == 0.0  # 28/s remembered: doubling back to it
    late = attrs.evolve(state, w_max=10.0, last_cut=68.0)
    expected = 10.0 * (9.0 / 20.0) ** (1 / 3)
    assert cut(late, 80.0, 10.0).hold == pytest.approx(expected)  # 16/s remembered
    # A RedisLimiter's state is the whole budget's: no other process cuts its share.
    assert cut(Throttle(w_max=40.0, last_cut=0.0), 8.0, 4.0, shared=True).peak == 0.0


def test_a_probe_that_overshoots_resumes_below_the_overshoot() -> None:
    held = Throttle(w_max=50.0, last_cut=0.0)  # 45/s held, then probing from 12 s
    at_429 = rate_at(held, 16.0) or 0.0
    assert at_429 > 50.0
    decided = after_429(
        held,
        now=16.0,
        sent_at=15.99,
        retry_after=1.0,
        adaptive=True,
        rtt=0.01,
        accepted=lambda window: 0.95 * at_429,  # what the server let through meanwhile
        accepted_count=100,
    )
    later = [rate_at(decided, 17.0 + step / 10) or 0.0 for step in range(100)]
    # Back to 90 % of what was accepted, not doubling up to the overshoot's own rate.
    assert max(later) == pytest.approx(0.9 * 0.95 * at_429)


def test_after_429_measures_the_accepted_rate() -> None:
    state = Throttle(w_max=50.0, last_cut=0.0)
    decided = after_429(
        state,
        now=30.0,
        sent_at=29.9,
        retry_after=1.0,
        adaptive=True,
        rtt=0.01,
        accepted=lambda window: 42.0,
        accepted_count=84,
    )
    assert decided.w_max == 42.0
    assert decided.last_cut == 30.0
    assert (decided.paused_at, decided.paused_until) == (30.0, 31.0)
    again = after_429(
        decided,
        now=30.2,
        sent_at=29.95,
        retry_after=1.0,
        adaptive=True,
        rtt=0.01,
        accepted=lambda window: 10.0,
        accepted_count=20,
    )
    assert again == decided  # sent before the cut: nothing new, not even the pause


async def test_a_rate_that_grows_while_a_request_waits_is_followed() -> None:
    clock = FakeClock()
    limiter = Limiter(4, clock=clock, sleep=clock.sleep)
    sent = await send(limiter, 2)
    await limiter.throttled(sent[-1], retry_after=None)  # slow start from 1 request/s
    await send(limiter, 1)
    before = clock.now
    await send(limiter, 1)
    assert clock.now - before < 1.0  # not the full second the first rate asked for


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        Limiter(0)
    with pytest.raises(ValueError, match="rate"):
        Limiter(1, rate=-1)
    with pytest.raises(TypeError, match="max_in_flight"):
        Limiter(True)


async def test_a_fixed_rate_is_kept_when_timers_fire_late() -> None:
    clock = FakeClock()

    async def late_sleep(seconds: float) -> None:
        clock.now += seconds + 0.001  # every timer a millisecond late, as under load

    limiter = Limiter(4, rate=50.0, clock=clock, sleep=late_sleep)
    sent = await send(limiter, 101)
    assert sent[-1] - sent[0] == pytest.approx(2.0, abs=0.01)  # 100 intervals of 20 ms
    clock.now += 5.0  # idle: the schedule starts again, with no burst saved up
    after_gap = await send(limiter, 3)
    assert after_gap[1] - after_gap[0] >= 0.019


async def test_an_unknown_budget_starts_with_fewer_in_flight_until_answers_come() -> None:
    limiter = Limiter(16)
    assert limiter.max_in_flight == 16
    entered = 0
    release = anyio.Event()

    async def hold() -> None:
        nonlocal entered
        async with limiter.slot() as sent_at:
            entered += 1
            await release.wait()
        await limiter.accepted(sent_at)

    async with anyio.create_task_group() as group:
        for _ in range(16):
            group.start_soon(hold)
        await anyio.sleep(0.05)
        assert entered == 4  # the first window
        release.set()
    assert entered == 16
    fixed = Limiter(16, rate=1000.0)  # a known rate is paced instead: all may be in flight
    assert fixed._queue.slots.total == 16


async def sent_before_any_answer(limiter: Limiter, clock: FakeClock, count: int) -> list[float]:
    """The send times of ``count`` requests sent before any answer came, a moment ago."""
    first = []
    for _ in range(count):
        async with limiter.slot() as sent_at:
            first.append(sent_at)
    clock.now += 0.05
    return first


async def test_answers_to_the_first_window_do_not_widen_it() -> None:
    # A first window the server's bucket absorbed answers in a burst: widening it then would
    # only send more at the bucket it has just emptied. Its first answer, if not a 429, opens
    # eight places; answers to later sends widen it.
    clock = FakeClock()
    limiter = Limiter(16, clock=clock, sleep=clock.sleep)
    for sent_at in await sent_before_any_answer(limiter, clock, 8):
        await limiter.accepted(sent_at)
    assert limiter._queue.slots.total == 8
    await send(limiter, 3)
    assert limiter._queue.slots.total == 11


async def test_nothing_more_is_sent_until_the_whole_first_window_is_answered() -> None:
    # Its answers arrive in a burst, those let through before the 429s of the others: a
    # request sent on a place one freed would meet the bucket the window emptied.
    limiter = Limiter(16)
    answers = [anyio.Event() for _ in range(9)]
    sent: list[int] = []

    async def request(number: int) -> None:
        async with limiter.slot() as sent_at:
            sent.append(number)
            await answers[number].wait()
        await limiter.accepted(sent_at)

    async with anyio.create_task_group() as group:
        for number in range(9):
            group.start_soon(request, number)
            await anyio.sleep(0.001)
        assert sent == list(range(4))  # the first window
        answers[0].set()
        await anyio.sleep(0.02)
        # Let through: eight may now be in flight, but three answers are still out.
        assert limiter._queue.slots.total == 8
        assert sent == list(range(4))
        answers[1].set()
        answers[2].set()
        await anyio.sleep(0.02)
        assert sent == list(range(4))
        answers[3].set()
        await anyio.sleep(0.02)
        assert sent == list(range(9))
        for number in range(4, 9):
            answers[number].set()
    # Later answers never hold anything back.
    assert await send(limiter, 3)


async def test_a_slow_call_in_the_first_window_holds_the_others_back_half_a_second() -> None:
    limiter = Limiter(16)
    slow = anyio.Event()
    sent: list[float] = []

    async def request(answer: anyio.Event | None) -> None:
        async with limiter.slot() as sent_at:
            sent.append(anyio.current_time())
            if answer is not None:
                await answer.wait()
        await limiter.accepted(sent_at)

    async with anyio.create_task_group() as group:
        group.start_soon(request, slow)
        await anyio.sleep(0.001)
        group.start_soon(request, None)  # answered at once: the first answer
        await anyio.sleep(0.001)
        began = anyio.current_time()
        await request(None)  # waits for the slow one, but not for ever
        assert 0.4 < sent[-1] - began < 1.0
        slow.set()


async def test_a_first_window_answered_with_a_429_is_not_widened() -> None:
    clock = FakeClock()
    limiter = Limiter(16, clock=clock, sleep=clock.sleep)
    first = await sent_before_any_answer(limiter, clock, 4)
    await limiter.throttled(first[0], 1.0)
    for sent_at in first[1:]:
        await limiter.accepted(sent_at)
    assert limiter._queue.slots.total == 4
    clock.now += 1.0
    await send(limiter, 2)
    assert limiter._queue.slots.total == 6  # one more for each answer after the first


def test_429s_while_the_bucket_refills_after_a_cut_are_the_same_episode() -> None:
    # No Retry-After: right after a cut the server's bucket is still empty, and requests sent
    # at the new rate are refused for a moment. Cutting again for each would halve the rate.
    first = after_429(
        Throttle(w_max=50.0, last_cut=0.0),
        now=20.0,
        sent_at=19.99,
        retry_after=None,
        adaptive=True,
        rtt=0.005,
        accepted=lambda window: 48.0,
        accepted_count=96,
    )
    again = after_429(
        first,
        now=20.2,
        sent_at=20.15,  # sent after the cut, at the cut rate, still refused
        retry_after=None,
        adaptive=True,
        rtt=0.005,
        accepted=lambda window: 48.0,
        accepted_count=96,
    )
    assert again == first
    later = after_429(
        first,
        now=21.0,
        sent_at=20.9,
        retry_after=None,
        adaptive=True,
        rtt=0.005,
        accepted=lambda window: 30.0,
        accepted_count=70,
    )
    assert later.w_max < first.w_max  # the cut rate itself too high: a new episode


def test_a_429_right_after_a_pause_halves_instead_of_measuring_the_pause() -> None:
    # Slow start resumed when the pause ended at 11.0; refused at 11.15, when the last half
    # second was mostly pause: it measured almost nothing accepted.
    state = Throttle(w_max=20.0, slow_start=True, last_cut=10.0, paused_at=10.0, paused_until=11.0)
    current = rate_at(state, 11.15) or 0.0
    decided = after_429(
        state,
        now=11.15,
        sent_at=11.14,
        retry_after=1.0,
        adaptive=True,
        rtt=0.01,
        accepted=lambda window: 2.0,
        accepted_count=30,
    )
    assert decided.w_max == pytest.approx(current / 2)
    assert not decided.slow_start


async def test_a_retry_keeps_the_place_its_call_had_in_the_queue() -> None:
    from uphance_async._ratelimit import call_began

    limiter = Limiter(max_in_flight=1, rate=1000.0)
    order: list[str] = []

    async def call(name: str, began: float, hold: float = 0.0) -> None:
        token = call_began.set(began)
        try:
            async with limiter.slot():
                order.append(name)
                await anyio.sleep(hold)
        finally:
            call_began.reset(token)

    async with anyio.create_task_group() as group:
        group.start_soon(call, "holder", 0.0, 0.05)
        await anyio.sleep(0.01)
        group.start_soon(call, "second call", 2.0)
        group.start_soon(call, "third call", 3.0)
        await anyio.sleep(0.01)
        group.start_soon(call, "retry of the first call", 1.0)  # arrives last, began first
    assert order == ["holder", "retry of the first call", "second call", "third call"]


async def test_a_held_rate_is_a_ceiling_that_no_probe_passes() -> None:
    """A shared limiter's fallback holds its share for the whole outage: after a 429 the rate
    is cut and climbs back, but never probes above the share; ``None`` lifts the ceiling."""
    clock = FakeClock()
    limiter = Limiter(8, clock=clock, sleep=clock.sleep)
    limiter.hold(10.0)
    assert limiter.rate == pytest.approx(10.0)
    await steady(limiter, clock, 10, 30.0)  # long past the hold, where probes would begin
    assert limiter.rate == pytest.approx(10.0)
    await limiter.throttled(clock.now - 0.01, retry_after=None)
    assert (limiter.rate or 0.0) < 10.0  # a 429 still cuts
    await steady(limiter, clock, 9, 30.0)
    assert (limiter.rate or 0.0) <= 10.0
    limiter.hold(None)
    clock.now += 60.0
    assert (limiter.rate or 0.0) > 10.0  # probing again


async def test_a_place_taken_by_a_call_cancelled_at_once_is_given_back() -> None:
    """Taking a free place lets the others run once; a call cancelled just then loses its
    place to nobody: the place is free again."""
    import asyncio

    from uphance_async._ratelimit import Places

    places = Places(1)
    taker = asyncio.create_task(places.acquire(0.0))
    await asyncio.sleep(0)  # the taker has its place and yields
    assert places.used == 1
    taker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taker
    assert places.used == 0
    await asyncio.wait_for(places.acquire(1.0), 1.0)
