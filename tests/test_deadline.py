"""A deadline for the whole call: every wait included, and load shed at once instead of queued."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from uphance_async import (
    APITimeoutError,
    Limiter,
    RateLimitError,
    RetryPolicy,
    UphanceClient,
)
from uphance_async.testing import FakeUphance

PATIENT = RetryPolicy(max_attempts=10, backoff=0.2, max_backoff=2.0, max_retry_after=10.0)


def app(handler: Any) -> web.Application:
    application = web.Application()
    application.router.add_get("/customers/{id}", handler)
    application.router.add_get("/customers", handler)
    return application


async def test_a_deadline_bounds_a_call_whose_attempt_timeout_does_not(serve_app: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"customer": {"id": 5}})

    url = await serve_app(app(slow))
    async with UphanceClient(token="t" * 16, base_url=url, timeout=60, deadline=0.4) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError, match=r"deadline of 0\.4 s"):
            await client.customers.get(5)
    assert time.monotonic() - started < 1.0


async def test_a_retry_that_would_end_past_the_deadline_is_not_started(serve_app: Any) -> None:
    asked = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "5"})

    url = await serve_app(app(busy))
    async with UphanceClient(token="t" * 16, base_url=url, retry=PATIENT, deadline=1.0) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await client.customers.get(5)
    assert time.monotonic() - started < 0.5
    assert asked == 1
    assert caught.value.retry_after == 5.0


async def test_calls_the_budget_cannot_serve_in_time_are_shed_at_once() -> None:
    async with FakeUphance(customers=10) as server:
        limiter = Limiter(max_in_flight=16, rate=5.0)
        async with UphanceClient(
            token=server.token, base_url=server.url, limiter=limiter, deadline=1.0
        ) as client:
            wanted = server.ids()[0]
            outcomes: list[tuple[str, float]] = []
            waits: list[float | None] = []

            async def call() -> None:
                started = time.monotonic()
                try:
                    await client.customers.get(wanted)
                    outcomes.append(("served", time.monotonic() - started))
                except RateLimitError as error:
                    waits.append(error.retry_after)
                    outcomes.append(("shed", time.monotonic() - started))

            await asyncio.gather(*(call() for _ in range(20)))
        served = [took for what, took in outcomes if what == "served"]
        shed = [took for what, took in outcomes if what == "shed"]
        # What 5 per second lets through while the wait is at most half the deadline.
        assert 2 <= len(served) <= 5
        assert max(served) <= 0.6
        assert shed
        assert all(wait is not None and wait > 0.5 for wait in waits)
        assert max(shed) < 0.05  # answered at once, not after waiting
        assert len(server.requests) == len(served)  # shed calls spent no budget


async def test_without_a_deadline_calls_queue_as_before() -> None:
    async with FakeUphance(customers=10) as server:
        limiter = Limiter(max_in_flight=16, rate=20.0)
        async with UphanceClient(
            token=server.token, base_url=server.url, limiter=limiter
        ) as client:
            wanted = server.ids()[0]
            await asyncio.gather(*(client.customers.get(wanted) for _ in range(12)))
        assert len(server.requests) == 12


async def test_the_limiter_serves_first_come_first_served() -> None:
    limiter = Limiter(max_in_flight=4, rate=50.0)
    order: list[int] = []

    async def call(number: int) -> None:
        async with limiter.slot():
            order.append(number)
            await asyncio.sleep(0.01)

    tasks = []
    for number in range(20):
        tasks.append(asyncio.ensure_future(call(number)))
        await asyncio.sleep(0)  # arrive in this order
    await asyncio.gather(*tasks)
    assert order == list(range(20))


async def test_with_options_sets_a_deadline_for_its_calls(serve_app: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.json_response({"customer": {"id": 5}})

    url = await serve_app(app(slow))
    async with UphanceClient(token="t" * 16, base_url=url) as client:
        assert (await client.customers.get(5)).id == 5
        with pytest.raises(APITimeoutError):
            await client.with_options(deadline=0.2).customers.get(5)
        with pytest.raises(ValueError, match="deadline"):
            client.with_options(deadline=-1)
    with pytest.raises(ValueError, match="deadline"):
        UphanceClient(token="t" * 16, deadline=0)


async def test_in_a_stream_the_deadline_bounds_each_page(serve_app: Any) -> None:
    async def pages(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        if number == 3:
            await asyncio.sleep(2)
        items = [{"id": number * 10 + n} for n in range(10)]
        meta = {"current_page": number, "next_page": number + 1 if number < 4 else None}
        return web.json_response({"customers": items, "meta": {**meta, "total_pages": 4}})

    url = await serve_app(app(pages))
    async with UphanceClient(token="t" * 16, base_url=url, deadline=0.5) as client:
        seen: list[int] = []

        async def drain() -> None:
            async for customer in client.customers.stream(concurrency=1):
                seen.append(customer.id)

        with pytest.raises(APITimeoutError) as caught:
            await drain()
    assert len(seen) == 20
    assert caught.value.checkpoint is not None
    assert caught.value.checkpoint.next_page == 3


async def test_queued_calls_a_cut_leaves_without_a_chance_are_shed_not_left_to_time_out() -> None:
    from uphance_async._ratelimit import Shed

    limiter = Limiter(max_in_flight=4, rate=100.0)
    outcomes: list[str] = []

    async def call() -> None:
        deadline = asyncio.get_running_loop().time() + 1.0
        try:
            async with limiter.slot(deadline):
                outcomes.append("sent")
        except Shed as shed:
            outcomes.append("shed" if shed.wait > 0 else "shed without an estimate")

    calls = [asyncio.ensure_future(call()) for _ in range(60)]
    await asyncio.sleep(0)
    limiter._fixed = 5.0  # the rate falls while they wait: most can no longer make it
    started = time.monotonic()
    await asyncio.gather(*calls)
    assert 2 <= outcomes.count("sent") <= 12
    assert outcomes.count("shed") >= 48
    assert time.monotonic() - started < 1.5


async def test_calls_admitted_keep_room_for_one_more_pause_and_are_not_shed_later() -> None:
    from uphance_async._ratelimit import Shed

    limiter = Limiter(max_in_flight=4, rate=50.0)
    await limiter.throttled(asyncio.get_running_loop().time(), retry_after=0.3)
    await asyncio.sleep(0.35)  # the first pause is over; its length is remembered
    outcomes: list[tuple[str, float]] = []

    async def call() -> None:
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + 0.6
        try:
            async with limiter.slot(deadline) as sent_at:
                await limiter.accepted(sent_at)
                outcomes.append(("sent", time.monotonic() - started))
        except Shed:
            outcomes.append(("shed", time.monotonic() - started))

    calls = [asyncio.ensure_future(call()) for _ in range(30)]
    await asyncio.sleep(0.1)
    await limiter.throttled(asyncio.get_running_loop().time(), retry_after=0.3)  # a second
    await asyncio.gather(*calls)
    sent = [took for what, took in outcomes if what == "sent"]
    shed = [took for what, took in outcomes if what == "shed"]
    assert 3 <= len(sent) <= 12  # a queue of at most a quarter of the deadline
    assert max(sent) < 0.6  # every call let in made its deadline, across the second pause
    assert shed
    assert max(shed) < 0.05  # the others were told at once, none after waiting


async def test_a_retry_the_limiter_would_shed_is_not_waited_for(serve_app: Any) -> None:
    asked = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})

    class Crowded(Limiter):
        """A limiter whose queue, by the time a retry would arrive, is too long to serve it."""

        def sheds(self, deadline: float, after: float = 0.0) -> float | None:
            return 4.0 if after else None

    url = await serve_app(app(busy))
    async with UphanceClient(
        token="t" * 16, base_url=url, retry=PATIENT, deadline=5.0, limiter=Crowded()
    ) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await client.customers.get(5)
    assert time.monotonic() - started < 0.5  # not after sleeping out the Retry-After first
    assert asked == 1
    assert caught.value.retry_after == 1.0


async def test_a_retry_after_a_pause_is_let_in_when_the_queue_allows(serve_app: Any) -> None:
    asked = 0

    async def once_busy(request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        if asked == 1:
            return web.json_response({"error": "wait"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({"customer": {"id": 5}})

    url = await serve_app(app(once_busy))
    async with UphanceClient(
        token="t" * 16, base_url=url, retry=PATIENT, deadline=1.6, rate_limit=10
    ) as client:
        assert (await client.customers.get(5)).id == 5
    assert asked == 2
