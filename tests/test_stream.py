"""The streaming engine through the real fake server: order, bounds, faults, limits, resume."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from uphance_async import Checkpoint, Customer, RetryPolicy, UphanceClient, converter
from uphance_async.errors import (
    ClientClosedError,
    ResponseValidationError,
    ServerError,
    UphanceError,
)
from uphance_async.pagination import Page, PageMeta, PageStream, id_key
from uphance_async.testing import FAULTS, FakeUphance


def _awaited(task: asyncio.Task[Any]) -> Iterator[str]:
    """The qualified names down the chain of coroutines ``task`` is suspended in."""
    coroutine: Any = task.get_coro()
    for _ in range(50):
        if coroutine is None:
            return
        yield getattr(coroutine, "__qualname__", "")
        coroutine = getattr(coroutine, "cr_await", None)


def stream_tasks() -> list[asyncio.Task[Any]]:
    """Tasks of the engine (its page fetches) still alive on this loop."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and any("_Pump" in name for name in _awaited(task))
    ]


@pytest.mark.parametrize("tenant", [{"latency": 0.2}], indirect=True)
async def test_stream_tasks_finds_every_page_fetch(api: UphanceClient) -> None:
    async with api.customers.stream(status="all", concurrency=4) as stream:
        await anext(stream)  # page 1 done; a window of 2 x 4 pages is being fetched
        await asyncio.sleep(0.05)
        names = [next(n for n in _awaited(task) if "_Pump" in n) for task in stream_tasks()]
        # One task a page and nothing else: pages are parsed in the consumer's task.
        assert names == ["_Pump._download"] * 8
    assert not stream_tasks()


class _CountedPages:
    """A page source over ``pages`` of ``size`` ids that counts the pages parsed."""

    def __init__(self, pages: int, size: int, delay: float = 0.0) -> None:
        self.pages, self.size, self.delay = pages, size, delay
        self.parsed: list[int] = []
        self.downloads = 0

    async def download(self, number: int, observer: Any) -> bytes:
        self.downloads += 1
        await asyncio.sleep(self.delay)
        return str(number).encode()

    def parse(self, body: bytes) -> Page[Any]:
        number = int(body)
        self.parsed.append(number)
        ids = range((number - 1) * self.size, number * self.size)
        following = number + 1 if number < self.pages else None
        meta = PageMeta(next_page=following, total_pages=self.pages)
        return Page(items=tuple({"id": i} for i in ids), meta=meta)


async def test_a_page_is_parsed_only_when_the_consumer_reaches_it() -> None:
    source = _CountedPages(pages=5, size=10)
    async with PageStream[dict[str, int]](source, key=id_key, concurrency=4) as stream:
        await anext(stream)
        await asyncio.sleep(0.05)  # every page downloaded by now
        assert source.downloads == 5
        # One decoded page alive: the next is still bytes until the consumer wants it.
        assert source.parsed == [1]
        for _ in range(10):
            await anext(stream)
        assert source.parsed == [1, 2]


class _Record:
    __slots__ = ("__weakref__", "id")

    def __init__(self, key: int) -> None:
        self.id = key


async def test_the_page_handed_out_is_let_go_before_the_next_is_decoded() -> None:
    """One decoded page alive at a time: the collector never finds two."""
    alive: list[weakref.ref[_Record]] = []
    found_alive: list[int] = []

    class Pages(_CountedPages):
        def parse(self, body: bytes) -> Page[Any]:
            found_alive.append(sum(ref() is not None for ref in alive))
            page = super().parse(body)
            records = tuple(_Record(item["id"]) for item in page.items)
            alive.extend(weakref.ref(record) for record in records)
            return Page(items=records, meta=page.meta)

    stream = PageStream[_Record](Pages(pages=4, size=10), key=id_key, concurrency=2)
    async with stream:
        assert [record.id async for record in stream] == list(range(40))
    # Only the record the consumer's loop variable still holds, not its page.
    assert found_alive == [0, 1, 1, 1]


@contextlib.contextmanager
def collector(
    thresholds: tuple[int, int], told: Callable[[str, dict[str, int]], None], *, on: bool = True
) -> Iterator[None]:
    """The collector with these two thresholds (and turned off unless ``on``), telling ``told``
    of each collection; as it was afterwards."""
    before, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(*thresholds)
    if not on:
        gc.disable()
    gc.callbacks.append(told)
    try:
        yield
    finally:
        gc.callbacks.remove(told)
        gc.set_threshold(*before)
        if enabled:
            gc.enable()


async def test_the_middle_generation_is_collected_between_pages() -> None:
    """A collection of the collector's middle generation while a page is alive would move its
    records to the oldest generation: it runs between pages instead, when nearly due."""
    records_in_young: list[int] = []

    class Pages(_CountedPages):
        def parse(self, body: bytes) -> Page[Any]:
            page = super().parse(body)
            return Page(items=tuple(_Record(item["id"]) for item in page.items), meta=page.meta)

    def young_records(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 1:
            young = gc.get_objects(0) + gc.get_objects(1)
            records_in_young.append(sum(type(thing) is _Record for thing in young))

    stream = PageStream[_Record](Pages(pages=120, size=150), key=id_key, concurrency=4)
    # A page's parse makes one or two collections of the youngest generation.
    with collector((200, 10), young_records):
        async with stream:
            assert len([record.id async for record in stream]) == 18000
    assert len(records_in_young) >= 10
    # At most the record the consumer's loop variable holds: never a page.
    assert max(records_in_young) <= 1


@pytest.mark.parametrize("off", ["disabled", "threshold zero"])
async def test_a_collector_turned_off_is_left_alone(off: str) -> None:
    collections: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    stream = PageStream[dict[str, int]](
        _CountedPages(pages=40, size=150), key=id_key, concurrency=4
    )
    thresholds = (0, 1) if off == "threshold zero" else (700, 1)
    with collector(thresholds, counted, on=off != "disabled"):
        async with stream:
            assert len([record async for record in stream]) == 6000
    assert collections == []


async def test_a_consumer_cancelled_while_waiting_loses_nothing() -> None:
    source = _CountedPages(pages=6, size=10, delay=0.05)
    seen: list[int] = []
    timeouts = 0
    async with PageStream[dict[str, int]](source, key=id_key, concurrency=2) as stream:
        while True:
            try:
                item = await asyncio.wait_for(anext(stream), 0.01)
            except TimeoutError:
                timeouts += 1
                continue
            except StopAsyncIteration:
                break
            seen.append(item["id"])
    assert timeouts > 0
    assert seen == list(range(60))
    # The page a cancelled wait was for kept downloading: none was fetched twice.
    assert source.downloads == 6


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def collect(stream: AsyncIterator[Customer]) -> list[int]:
    return [customer.id async for customer in stream]


@pytest.fixture
async def tenant(request: pytest.FixtureRequest) -> AsyncIterator[FakeUphance]:
    options = {"customers": 250, "page_size": 10, "seed": 11, **getattr(request, "param", {})}
    async with FakeUphance(**options) as fake:
        yield fake


@pytest.fixture
async def api(tenant: FakeUphance, fast_retry: RetryPolicy) -> AsyncIterator[UphanceClient]:
    async with UphanceClient(token=tenant.token, base_url=tenant.url, retry=fast_retry) as client:
        yield client


@pytest.mark.parametrize(
    ("customers", "page_size"), [(0, 100), (1, 100), (99, 100), (100, 100), (101, 100), (3000, 7)]
)
@pytest.mark.parametrize("concurrency", [1, 8])
async def test_order_and_completeness(customers: int, page_size: int, concurrency: int) -> None:
    async with FakeUphance(customers=customers, page_size=page_size, seed=2) as server:
        client = UphanceClient(token=server.token, base_url=server.url)
        async with client:
            stream = client.customers.stream(status="all", concurrency=concurrency)
            ids = await collect(stream)
    assert ids == server.ids("all")
    assert stream.stats.items_yielded == customers
    assert stream.stats.pages_fetched == max(1, -(-customers // page_size))
    assert stream.stats.duplicates_dropped == 0
    assert stream.checkpoint.next_page == stream.stats.pages_fetched + 1


async def test_pages_are_requested_concurrently_within_the_bound() -> None:
    async with FakeUphance(customers=400, page_size=10, latency=0.02) as server:
        client = UphanceClient(token=server.token, base_url=server.url)
        async with client:
            assert len(await collect(client.customers.stream(concurrency=5))) == len(server.ids())
    assert server.max_in_flight == 5


async def test_the_client_limit_caps_every_stream_together() -> None:
    async with (
        FakeUphance(customers=400, page_size=10, latency=0.01) as server,
        UphanceClient(token=server.token, base_url=server.url, max_in_flight=3) as client,
    ):
        both = await asyncio.gather(
            collect(client.customers.stream(concurrency=8)),
            collect(client.customers.stream(status="all", concurrency=8)),
        )
    assert list(both) == [server.ids(), server.ids("all")]
    assert server.max_in_flight == 3


@pytest.mark.parametrize("tenant", [{"latency": 0.01}], indirect=True)
async def test_a_stalled_consumer_bounds_what_is_fetched(
    tenant: FakeUphance, api: UphanceClient
) -> None:
    async with api.customers.stream(status="all", concurrency=3) as stream:
        await anext(stream)
        await asyncio.sleep(0.3)
        fetched = stream.stats.pages_fetched
    assert 6 <= fetched <= 2 * 3 + 3
    assert not stream_tasks()


async def test_break_inside_async_with_stops_everything(api: UphanceClient) -> None:
    async with api.customers.stream(status="all") as stream:
        async for _ in stream:
            break
    assert not stream_tasks()


async def test_break_from_a_bare_loop_stops_everything(api: UphanceClient) -> None:
    async for _ in api.customers.stream(status="all"):
        break
    gc.collect()
    await settle()
    assert not stream_tasks()


async def test_an_exception_in_the_consumer_stops_everything(api: UphanceClient) -> None:
    async def fail_on_first() -> None:
        async for customer in api.customers.stream(status="all"):
            raise KeyError(customer.id)

    with pytest.raises(KeyError):
        await fail_on_first()
    gc.collect()
    await settle()
    assert not stream_tasks()


@pytest.mark.parametrize("tenant", [{"latency": 0.05}], indirect=True)
async def test_cancelling_the_consumer_stops_everything(api: UphanceClient) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async with api.customers.stream(status="all") as stream:
            async for _ in stream:
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not stream_tasks()


async def test_closing_the_client_stops_its_streams(tenant: FakeUphance) -> None:
    client = UphanceClient(token=tenant.token, base_url=tenant.url)
    stream = client.customers.stream(status="all")
    await anext(stream)
    await client.aclose()
    assert not stream_tasks()
    with pytest.raises(ClientClosedError) as caught:
        await anext(stream)
    assert caught.value.checkpoint == Checkpoint(
        next_page=1, params={"by_status": "all"}, items_yielded=1
    )


async def test_a_closed_stream_ends(api: UphanceClient) -> None:
    stream = api.customers.stream(status="all")
    await anext(stream)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_resume_from_a_checkpoint_gives_exactly_the_rest(
    tenant: FakeUphance, api: UphanceClient
) -> None:
    everything = tenant.ids("all")
    seen = []
    async with api.customers.stream(status="all", concurrency=4) as stream:
        async for customer in stream:
            seen.append(customer.id)
            if len(seen) == 57:
                break
    checkpoint = stream.checkpoint
    assert checkpoint.next_page == 6
    assert checkpoint.params == {"by_status": "all"}
    assert checkpoint.items_yielded == 57
    saved = converter.structure(converter.unstructure(checkpoint), Checkpoint)
    rest = await collect(api.customers.stream(resume=saved))
    assert rest == everything[50:]
    with pytest.raises(ValueError, match="checkpoint"):
        api.customers.stream(status="active", resume=saved)


@pytest.mark.parametrize("tenant", [{"fault_rate": 0.3, "faults": ("503",)}], indirect=True)
async def test_an_error_surfaces_after_earlier_pages_with_its_checkpoint(
    tenant: FakeUphance,
) -> None:
    async with UphanceClient(
        token=tenant.token, base_url=tenant.url, retry=RetryPolicy(max_attempts=1)
    ) as client:
        seen: list[int] = []
        checkpoint: Checkpoint | None = None
        # (items seen when the error came, the error's checkpoint), one entry per failure
        failures: list[tuple[int, Checkpoint | None]] = []
        while True:
            stream = client.customers.stream(status="all", concurrency=4, resume=checkpoint)
            try:
                async for customer in stream:
                    seen.append(customer.id)
            except ServerError as error:
                checkpoint = error.checkpoint
                failures.append((len(seen), error.checkpoint))
            else:
                break
    assert seen == tenant.ids("all")
    assert failures
    for count, failed_at in failures:
        assert isinstance(failed_at, Checkpoint)
        assert failed_at.items_yielded == count
        assert count == (failed_at.next_page - 1) * tenant.page_size


@pytest.mark.parametrize(
    "tenant",
    [{"fault_rate": 0.1, "seed": 5, "customers": 1000, "slow_seconds": 0.6}]
    + [{"fault_rate": 0.3, "faults": (kind,), "slow_seconds": 0.6} for kind in FAULTS],
    indirect=True,
    ids=["all-at-10%", *(f"{kind}-at-30%" for kind in FAULTS)],
)
async def test_faults_lose_nothing(tenant: FakeUphance) -> None:
    policy = RetryPolicy(max_attempts=8, backoff=0.001, max_backoff=0.01)
    async with UphanceClient(
        token=tenant.token, base_url=tenant.url, retry=policy, timeout=0.3
    ) as client:
        stream = client.customers.stream(status="all", concurrency=6)
        ids = await collect(stream)
    assert ids == tenant.ids("all")
    # aiohttp itself retries a GET once when a reused connection turns out closed ("drop").
    assert 0 < stream.stats.retries <= tenant.faults_injected
    for _ in range(100):  # a "slow" answer is recorded when it ends, after the client gave up
        if not tenant.in_flight:
            break
        await asyncio.sleep(0.02)
    assert {r.fault for r in tenant.requests} - {None} == set(tenant.faults)


@pytest.mark.parametrize("tenant", [{"rate_limit": 40.0, "rate_burst": 4}], indirect=True)
async def test_a_server_rate_limit_is_honoured(tenant: FakeUphance) -> None:
    policy = RetryPolicy(max_attempts=8, backoff=0.01, max_backoff=0.1, max_retry_after=0.2)
    async with UphanceClient(token=tenant.token, base_url=tenant.url, retry=policy) as client:
        assert client.rate_limit is None
        stream = client.customers.stream(status="all", concurrency=8)
        ids = await collect(stream)
        assert client.rate_limit is not None
    assert ids == tenant.ids("all")
    assert stream.stats.throttled == tenant.throttled > 0
    assert tenant.throttled < len(tenant.requests) / 2


async def test_records_shifted_by_inserts_are_not_yielded_twice(
    tenant: FakeUphance, api: UphanceClient
) -> None:
    before = tenant.ids("all")
    added: list[int] = []

    def grow(server: FakeUphance) -> None:
        if len(server.requests) in (3, 9, 15):
            added.extend(server.insert_customers(4, at=0))

    tenant.on_request = grow
    stream = api.customers.stream(status="all", concurrency=3)
    ids = await collect(stream)
    assert len(ids) == len(set(ids))
    assert set(before) <= set(ids)
    assert stream.stats.duplicates_dropped > 0
    assert stream.stats.pages_fetched > 25


async def test_a_shrinking_tenant_ends_cleanly(tenant: FakeUphance, api: UphanceClient) -> None:
    def shrink(server: FakeUphance) -> None:
        if len(server.requests) == 5:
            server.delete_customers(60, at=200)

    tenant.on_request = shrink
    ids = await collect(api.customers.stream(status="all", concurrency=2))
    assert len(ids) == len(set(ids))
    assert set(ids) >= set(tenant.ids("all"))


async def test_unordered_streams_deliver_everything_once(
    tenant: FakeUphance, api: UphanceClient
) -> None:
    ids = await collect(api.customers.stream(status="all", ordered=False))
    assert sorted(ids) == sorted(tenant.ids("all"))
    assert len(ids) == len(set(ids))


async def test_raw_streams_yield_dicts(tenant: FakeUphance, api: UphanceClient) -> None:
    records = [record async for record in api.customers.stream(status="all", raw=True)]
    assert [record["id"] for record in records] == tenant.ids("all")
    assert records[0] == tenant.customer(records[0]["id"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"start_page": 0}, "start_page"),
        ({"status": "deleted"}, "status"),
    ],
)
def test_bad_stream_arguments(api: UphanceClient, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        api.customers.stream(**kwargs)


async def test_an_error_on_the_first_page_is_raised(tenant: FakeUphance) -> None:
    async with UphanceClient(token="wrong", base_url=tenant.url) as client:
        with pytest.raises(UphanceError) as caught:
            await collect(client.customers.stream())
    assert caught.value.checkpoint == Checkpoint(next_page=1, params={})


@pytest.mark.parametrize("keys", [range(0, 300_000, 3), range(90_000, 0, -7)])
def test_seen_keys_are_exact_across_settled_runs(keys: range) -> None:
    from uphance_async._dedupe import SeenKeys

    seen = SeenKeys()
    assert all(seen.add(key) for key in keys)
    assert not any(seen.add(key) for key in keys)
    assert seen.add(-1)
    assert seen.add(2**70)
    assert not seen.add(2**70)
    assert seen.add("a")
    assert not seen.add("a")


async def test_a_bad_customer_surfaces_after_the_good_ones(
    tenant: FakeUphance, api: UphanceClient
) -> None:
    everything = tenant.ids("all")
    bad = everything[123]
    tenant.patch_customer(bad, {"orders_count": "many"})
    seen: list[int] = []

    async def consume() -> None:
        async for customer in api.customers.stream(status="all"):
            seen.append(customer.id)

    with pytest.raises(ResponseValidationError) as caught:
        await consume()
    assert seen == everything[:123]
    assert caught.value.path == "$.customers[3].orders_count"
    assert caught.value.url_path == "/customers"
    assert caught.value.checkpoint == Checkpoint(
        next_page=13, params={"by_status": "all"}, items_yielded=123
    )
    raw = [record["id"] async for record in api.customers.stream(status="all", raw=True)]
    assert raw == everything


def pages_app(pages: dict[int, Any], asked: list[int]) -> web.Application:
    """GET /customers?page=N answered with ``pages[N]`` (``pages[0]``, or [], past the end)."""

    async def answer(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        asked.append(number)
        return web.json_response(pages.get(number, pages.get(0, [])))

    app = web.Application()
    app.router.add_get("/customers", answer)
    return app


@pytest.mark.parametrize(
    ("pages", "expected_ids", "expected_asks"),
    [
        # No meta, the page parameter honoured: read on until an empty page.
        ({1: [{"id": 1}, {"id": 2}], 2: [{"id": 3}], 3: []}, [1, 2, 3], [1, 2, 3]),
        # No meta and the page parameter ignored: the repeat of page 1 ends it.
        ({0: {"customers": [{"id": 1}, {"id": 2}]}}, [1, 2], [1, 2]),
        # A meta without next_page: derived from current_page and total_pages.
        (
            {
                1: {"customers": [{"id": 1}], "meta": {"current_page": 1, "total_pages": 2}},
                2: {"customers": [{"id": 2}], "meta": {"current_page": 2, "total_pages": 2}},
            },
            [1, 2],
            [1, 2],
        ),
    ],
)
async def test_servers_with_little_or_no_meta(
    pages: dict[int, Any],
    expected_ids: list[int],
    expected_asks: list[int],
    serve_app: Callable[[web.Application], Awaitable[str]],
) -> None:
    asked: list[int] = []
    url = await serve_app(pages_app(pages, asked))
    async with UphanceClient(token="t", base_url=url) as client:
        ids = await collect(client.customers.stream())
    assert ids == expected_ids
    assert sorted(asked) == expected_asks


def small_seen_keys(filter_bits: int) -> Any:
    """A ``SeenKeys`` that settles often into short runs, so that several runs are exercised
    on small inputs, behind a filter of ``filter_bits`` (small: unseen keys often find their
    bit set)."""
    from uphance_async._dedupe import SeenKeys

    class Small(SeenKeys):
        _BATCH = 16
        _RUN = 48
        _FILTER = filter_bits

    return Small()


@given(
    st.lists(
        st.lists(st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from(["a", "b"])),
        max_size=30,
    )
)
def test_seen_keys_match_a_plain_set(pages: list[list[int | str]]) -> None:
    seen, reference = small_seen_keys(64), set()
    for page in pages:
        expected = []
        for key in page:
            if key not in reference:
                reference.add(key)
                expected.append(key)
        assert list(seen.fresh(page, list(page))) == expected


@pytest.mark.parametrize("filter_bits", [64, 1 << 16])
def test_seen_keys_out_of_id_order_are_found_again(filter_bits: int) -> None:
    """A list not in id order: pages fall within the runs' ranges, behind a filter whose bits
    are shared by many keys (64) or by none (2**16, more than the keys' range)."""
    order = list(range(0, 2000, 7))
    random.Random(3).shuffle(order)
    pages = [order[start : start + 10] for start in range(0, len(order), 10)]
    seen = small_seen_keys(filter_bits)
    assert all(list(seen.fresh(page, list(page))) == page for page in pages)
    assert not any(seen.fresh(page, list(page)) for page in pages)
    mixed = [order[0], 1, order[150], 2]
    assert list(seen.fresh(mixed, list(mixed))) == [1, 2]


_IDS = st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from(["7", "a", None, True])


@given(
    st.lists(
        st.builds(lambda key: {"id": key}, _IDS)
        | st.builds(lambda: {"name": "no id"})
        | st.builds(_Record, st.integers()),
        max_size=20,
    )
)
def test_page_keys_are_the_keys_of_each_item(items: list[Any]) -> None:
    """The C-speed reading of a page's ids gives what ``id_key`` gives item by item."""
    from uphance_async._dedupe import keys_of

    assert keys_of(items, id_key) == [id_key(item) for item in items]
