"""Exact crawls of a list that moves: every customer that stayed in the list from the start of a
crawl to its end is handed out exactly once, or the crawl ends with a typed error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from uphance_async import DriftError, PaginationError, RetryPolicy, UphanceClient
from uphance_async import pagination as engine
from uphance_async._export import export
from uphance_async.testing import FakeUphance

FAST = RetryPolicy(max_attempts=2, backoff=0.001, max_backoff=0.01)


def assert_exact(delivered: list[int], before: list[int], after: list[int]) -> None:
    counts = Counter(delivered)
    assert not [key for key, n in counts.items() if n > 1], "a customer came twice"
    stable = set(before) & set(after)
    missing = stable - set(delivered)
    assert not missing, f"{len(missing)} stable customers missing"


async def crawl(server: FakeUphance, **options: Any) -> tuple[list[int], Any]:
    async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
        stream = client.customers.stream(status="all", raw=True, **options)
        delivered = [record["id"] async for record in stream]
    return delivered, stream.stats


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(
    ("delete", "create", "at"),
    [(3, 0, "front"), (5, 2, "front"), (0, 4, "front"), (3, 0, "end"), (2, 2, "end")],
)
async def test_a_list_changing_during_the_crawl_loses_no_stable_customer(
    concurrency: int, ordered: bool, delete: int, create: int, at: Any
) -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        before = server.ids("all")
        server.change_every(3, delete=delete, create=create, at=at, times=12)
        delivered, stats = await crawl(server, concurrency=concurrency, ordered=ordered)
        after = server.ids("all")
    assert_exact(delivered, before, after)
    assert stats.drift == (delete != create)
    # A few pages read again per change, never a second crawl.
    assert stats.pages_reread <= 12 * 4


async def test_a_list_that_holds_still_costs_no_extra_request() -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        delivered, stats = await crawl(server, concurrency=8)
        assert delivered == server.ids("all")
        assert len(server.requests) == 40
    assert not stats.drift
    assert stats.pages_reread == 0


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_list_that_never_settles_ends_in_a_drift_error(ordered: bool) -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        server.change_every(1, delete=1)
        delivered: list[int] = []

        async def drain(stream: Any) -> None:
            async for record in stream:
                delivered.append(record["id"])

        async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
            stream = client.customers.stream(status="all", raw=True, ordered=ordered)
            with pytest.raises(DriftError) as caught:
                await drain(stream)
        requests = len(server.requests)
    assert isinstance(caught.value, PaginationError)
    assert caught.value.checkpoint is not None
    assert len(delivered) == len(set(delivered))
    assert requests <= 40 + 8 * 40  # bounded: the crawl, then a bounded repair


def meta_page(items: list[dict[str, Any]], **meta: Any) -> web.Response:
    return web.json_response({"customers": items, "meta": meta})


async def test_pages_without_totals_and_always_new_ids_end_in_a_typed_error(
    serve_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_PAGES_WITHOUT_TOTALS", 60)

    async def endless(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        return meta_page([{"id": number * 10 + n} for n in range(10)], next_page=number + 1)

    app = web.Application()
    app.router.add_get("/customers", endless)
    url = await serve_app(app)
    async with UphanceClient(token="t" * 16, base_url=url, retry=FAST) as client:
        with pytest.raises(PaginationError, match="no totals"):
            async for _ in client.customers.stream(concurrency=4):
                pass


@pytest.mark.parametrize("following", [-3, 0, 1])
async def test_a_next_page_that_does_not_go_forward_is_a_pagination_error(
    serve_app: Any, following: int
) -> None:
    async def backwards(request: web.Request) -> web.Response:
        return meta_page([{"id": 1}, {"id": 2}], current_page=1, next_page=following)

    app = web.Application()
    app.router.add_get("/customers", backwards)
    url = await serve_app(app)
    async with UphanceClient(token="t" * 16, base_url=url, retry=FAST) as client:
        with pytest.raises(PaginationError, match="must go forward"):
            async for _ in client.customers.stream():
                pass


async def interrupted(server: FakeUphance, pages: int) -> tuple[list[int], Any]:
    """The ids of the first ``pages`` pages, and the checkpoint after them."""
    async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
        stream = client.customers.stream(status="all", raw=True, concurrency=4)
        delivered = []
        async with stream:
            async for record in stream:
                delivered.append(record["id"])
                if len(delivered) == pages * server.page_size:
                    break
            checkpoint = stream.checkpoint
    # What a resume keeps of a stopped run: the pages its checkpoint says are done.
    return delivered[: (checkpoint.next_page - 1) * server.page_size], checkpoint


@pytest.mark.parametrize(("delete", "create"), [(60, 0), (0, 20), (30, 10)])
async def test_a_resumed_stream_stays_exact_when_the_list_changed_meanwhile(
    delete: int, create: int
) -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        before = server.ids("all")
        first, checkpoint = await interrupted(server, 10)
        server.delete_customers(delete, at=0)
        server.insert_customers(create, at=0)
        async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
            stream = client.customers.stream(resume=checkpoint, raw=True)
            rest = [record["id"] async for record in stream]
        after = server.ids("all")
    assert_exact(first + rest, before, after)


async def test_a_resume_after_more_creations_than_it_can_tell_apart_is_a_drift_error() -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        _, checkpoint = await interrupted(server, 10)
        server.insert_customers(60, at=0)
        async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
            with pytest.raises(DriftError, match="added before the resume point"):
                async for _ in client.customers.stream(resume=checkpoint, raw=True):
                    pass


async def test_a_checkpoint_carries_what_an_exact_resume_needs() -> None:
    from uphance_async import Checkpoint, converter

    async with FakeUphance(customers=300, page_size=25, seed=4) as server:
        _, checkpoint = await interrupted(server, 4)
    assert checkpoint.total_count == 300
    assert checkpoint.page_size == 25
    assert len(checkpoint.last_ids) == 25
    data = json.loads(json.dumps(converter.unstructure(checkpoint)))
    again = converter.structure(data, Checkpoint)
    assert again == checkpoint
    assert (again.total_count, again.page_size, again.last_ids) == (300, 25, checkpoint.last_ids)
    assert converter.structure({"next_page": 3}, Checkpoint).last_ids == ()  # older checkpoints


@pytest.mark.parametrize(("delete", "create"), [(60, 0), (0, 20)])
async def test_an_export_resumed_after_the_list_changed_holds_each_stable_customer_once(
    tmp_path: Path, delete: int, create: int
) -> None:
    output = tmp_path / "customers.jsonl"
    async with FakeUphance(customers=600, page_size=25, seed=4) as server:
        before = server.ids("all")
        seen = 0

        def fail_later(fake: FakeUphance) -> None:
            nonlocal seen
            seen += 1
            if seen >= 8:
                fake.fault_rate, fake.faults = 1.0, ("503",)

        server.on_request = fail_later
        async with UphanceClient(
            token=server.token, base_url=server.url, retry=RetryPolicy(max_attempts=1)
        ) as client:
            with pytest.raises(Exception, match="503"):
                await export(client, output, status="all", concurrency=2)
        server.on_request, server.fault_rate = None, 0.0
        server.delete_customers(delete, at=0)
        server.insert_customers(create, at=0)
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            _, resumed = await export(client, output, status="all", resume=True)
        after = server.ids("all")
    assert resumed
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert_exact(ids, before, after)


@pytest.mark.parametrize("ordered", [True, False])
async def test_verify_catches_changes_that_keep_the_count(ordered: bool) -> None:
    async with FakeUphance(customers=1000, page_size=25, seed=4) as server:
        before = server.ids("all")
        # One deleted at the front and one created at the end: the count never moves.
        deleted = 0

        def churn(fake: FakeUphance) -> None:
            nonlocal deleted
            if len(fake.requests) % 3 == 2 and deleted < 15:
                deleted += 1
                fake.delete_customers(1, at=0)
                fake.insert_customers(1)

        server.on_request = churn
        plain, plain_stats = await crawl(server, concurrency=4, ordered=ordered)
        after_plain = server.ids("all")
        missing = (set(before) & set(after_plain)) - set(plain)
        assert missing  # what counts alone cannot see
        assert not plain_stats.drift
        deleted = 0
        before = server.ids("all")
        verified, stats = await crawl(server, concurrency=4, ordered=ordered, verify=True)
        after = server.ids("all")
    assert_exact(verified, before, after)
    assert 1 <= stats.verify_passes <= 3


async def test_verify_on_a_list_that_holds_still_costs_one_pass() -> None:
    async with FakeUphance(customers=500, page_size=25, seed=4) as server:
        delivered, stats = await crawl(server, concurrency=4, verify=True)
        assert delivered == server.ids("all")
        assert len(server.requests) == 2 * 20
    assert stats.verify_passes == 1


async def test_mend_finds_what_partitions_missed_and_repeated() -> None:
    async with FakeUphance(customers=400, page_size=25, seed=4) as server:
        before = server.ids("all")
        async with UphanceClient(token=server.token, base_url=server.url, retry=FAST) as client:
            parts = await client.customers.partitions(4, status="all")
            ends, delivered = [], []
            for number, part in enumerate(parts):
                if number == 2:
                    server.delete_customers(7, at=0)  # between two partitions' reads
                stream = client.customers.stream(resume=part, raw=True)
                delivered += [record["id"] async for record in stream]
                ends.append(stream.checkpoint)
            seams = await client.customers.mend(ends, raw=True)
            typed = await client.customers.mend(ends)
        after = server.ids("all")
    assert len(seams.missed) == 7
    assert seams.repeated == frozenset()
    assert [c.id for c in typed.missed] == [r["id"] for r in seams.missed]
    assert_exact(delivered + [r["id"] for r in seams.missed], before, after)
    with pytest.raises(ValueError, match="page order"):
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            await client.customers.mend(list(reversed(ends)))
