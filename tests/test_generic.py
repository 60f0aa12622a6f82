"""Any endpoint and any list: request(), paginate(), with_options() and the on_request hook."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import cattrs
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from uphance_async import Invoice, RequestEvent, RetryPolicy, UphanceClient
from uphance_async.errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    NotFoundError,
    ServerError,
)
from uphance_async.resources._lists import ListEndpoint, ListResource
from uphance_async.testing import FakeUphance

Serve = Callable[[web.Application], Awaitable[str]]
FAST = RetryPolicy(max_attempts=5, backoff=0.001, max_backoff=0.01, max_retry_after=0.05)
ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
async def invoicing() -> Any:
    async with FakeUphance(customers=400, page_size=25, seed=11) as fake:
        yield fake


async def test_request_reaches_any_endpoint(invoicing: FakeUphance) -> None:
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url) as client:
        answer = await client.request("GET", "/invoices", params={"page": 2, "since_id": 0})
        assert [i["id"] for i in answer["invoices"]] == [
            i["id"] for i in invoicing.invoices()[25:50]
        ]
        created = await client.request("post", "/customers", json={"name": "Via Request"})
        assert created["customer"]["name"] == "Via Request"
        with pytest.raises(NotFoundError):
            await client.request("GET", "/customers/1")
        for path in ("invoices", "/a?b=1", "/a/../b", "//evil.example/x", "/a b", "/a\r\nb"):
            with pytest.raises(ValueError, match="path"):
                await client.request("GET", path)
        with pytest.raises(ValueError, match="method"):
            await client.request("BREW", "/invoices")
        with pytest.raises(TypeError, match="params"):
            await client.request("GET", "/invoices", params={"since_id": [1, 2]})
    assert invoicing.requests[-1].path == "/customers/1"


async def test_request_retries_a_get_but_not_an_unsafe_post(serve_app: Serve) -> None:
    calls: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/anything", flaky)
    url = await serve_app(app)
    async with UphanceClient(token="t", base_url=url, retry=FAST) as client:
        assert await client.request("GET", "/anything") == {"ok": True}
        assert calls == ["GET"] * 3
        calls.clear()
        with pytest.raises(ServerError):
            await client.request("POST", "/anything", json={"x": 1})
        assert calls == ["POST"]


async def test_paginate_streams_another_list_through_faults(invoicing: FakeUphance) -> None:
    since = invoicing.invoices()[30]["id"]
    wanted = [i["id"] for i in invoicing.invoices(since)]
    invoicing.fault_rate = 0.25
    invoicing.faults = ("500", "502", "503", "drop", "truncate", "not_json")
    client = UphanceClient(token=invoicing.token, base_url=invoicing.url, retry=FAST)
    params = {"since_id": since}
    async with client, client.paginate("/invoices", key="invoices", params=params) as stream:
        got = [invoice["id"] async for invoice in stream]
    assert got == wanted
    assert stream.stats.retries > 0
    assert stream.stats.items_yielded == len(wanted)
    assert stream.checkpoint.params == {"since_id": str(since)}


async def test_paginate_hands_out_models_when_given_one(invoicing: FakeUphance) -> None:
    @attrs.frozen
    class Owned:
        """A user's own model: only the fields it names, leniently read."""

        id: int
        customer_id: int | None = None
        grand_total: Decimal | None = None

    odd = invoicing.invoices()[40]
    invoicing.patch_customer(
        odd["customer_id"],
        {"invoices": [{**odd, "id": str(odd["id"]), "grand_total": 12.5, "total_quantity": "3"}]},
    )
    raw_ids = [i["id"] for i in invoicing.invoices()]
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url) as client:
        invoices = [i async for i in client.paginate("/invoices", key="invoices", model=Invoice)]
        owned = [o async for o in client.paginate("/invoices", key="invoices", model=Owned)]
        with pytest.raises(TypeError, match="attrs class"):
            client.paginate("/invoices", key="invoices", model=dict)
    assert [invoice.id for invoice in invoices] == [int(i) for i in raw_ids]
    assert all(type(invoice) is Invoice for invoice in invoices)
    patched = next(invoice for invoice in invoices if invoice.id == int(odd["id"]))
    assert patched.grand_total == Decimal("12.5")
    assert patched.total_quantity == 3
    assert [o.id for o in owned] == [invoice.id for invoice in invoices]
    assert {o.customer_id for o in owned} >= {odd["customer_id"]}


async def test_a_typed_list_is_an_endpoint_and_a_list_resource(invoicing: FakeUphance) -> None:
    """The sketch in ListResource's documentation, run: /invoices with the existing model."""
    invoices_list = ListEndpoint("/invoices", "invoices", Invoice)
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url) as client:
        invoices = ListResource(
            invoices_list, client._transport, concurrency=lambda: 4, registry=client._registry
        )
        since = invoicing.invoices()[10]["id"]
        got = [invoice async for invoice in invoices.typed({"since_id": str(since)})]
        raw = [invoice async for invoice in invoices.raw({"since_id": str(since)})]
        first = await invoices.page(1, {"since_id": "0"})
    assert [invoice.id for invoice in got] == [int(i["id"]) for i in invoicing.invoices(since)]
    assert all(type(invoice) is Invoice for invoice in got)
    assert [r["id"] for r in raw] == [i["id"] for i in invoicing.invoices(since)]
    assert first.items[0].id == int(invoicing.invoices()[0]["id"])


async def test_paginate_resumes_from_the_checkpoint_of_its_error(invoicing: FakeUphance) -> None:
    wanted = [i["id"] for i in invoicing.invoices()]

    def fail_later(server: FakeUphance) -> None:
        if len(server.requests) >= 5:
            server.fault_rate, server.faults = 1.0, ("503",)

    invoicing.on_request = fail_later
    before: list[int] = []
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url, retry=ONCE) as client:
        with pytest.raises(ServerError) as caught:
            await drain(client.paginate("/invoices", key="invoices", concurrency=2), before)
        checkpoint = caught.value.checkpoint
        assert checkpoint is not None
        invoicing.on_request, invoicing.fault_rate = None, 0.0
        after = [
            i["id"] async for i in client.paginate("/invoices", key="invoices", resume=checkpoint)
        ]
    assert before == wanted[: len(before)]
    assert before + after == wanted
    assert checkpoint.items_yielded == len(before)


async def drain(stream: Any, into: list[int]) -> None:
    async for record in stream:
        into.append(record["id"])


async def test_paginate_drops_records_seen_before(serve_app: Serve) -> None:
    pages = {
        1: [{"id": 1}, {"id": 2}, {"id": 3}],
        2: [{"id": "3"}, {"id": 4}, {"no_id": True}],
        3: [{"id": 5}, {"no_id": True}],
    }

    async def listing(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        following = number + 1 if number < 3 else None
        meta = {"current_page": number, "total_pages": 3, "next_page": following}
        return web.json_response({"notes": pages.get(number, []), "meta": meta})

    app = web.Application()
    app.router.add_get("/notes", listing)
    url = await serve_app(app)
    async with UphanceClient(token="t", base_url=url) as client:
        stream = client.paginate("/notes", key="notes")
        got = [record.get("id") async for record in stream]
    assert got == [1, 2, 3, 4, None, 5, None]
    assert stream.stats.duplicates_dropped == 1


async def test_paginate_checks_its_arguments(invoicing: FakeUphance) -> None:
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url) as client:
        with pytest.raises(ValueError, match="key"):
            client.paginate("/invoices", key="")
        with pytest.raises(ValueError, match="path"):
            client.paginate("invoices", key="invoices")
        with pytest.raises(TypeError, match="Checkpoint"):
            client.paginate("/invoices", key="invoices", resume={"next_page": 2})  # type: ignore[call-overload]


async def test_with_options_is_a_view_of_the_same_client(serve_app: Serve) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({"customer": {"id": 5}})

    app = web.Application()
    app.router.add_get("/customers/{id}", slow)
    url = await serve_app(app)
    events: list[RequestEvent] = []
    client = UphanceClient(token="t", base_url=url, on_request=events.append, retry=FAST)
    async with client:
        hasty = client.with_options(timeout=0.1, retry=ONCE)
        # Made by the same path as a client: it has every attribute a client has.
        assert vars(hasty).keys() == vars(client).keys()
        assert (await client.customers.get(5)).id == 5
        with pytest.raises(APITimeoutError):
            await hasty.customers.get(5)
        assert [e.status for e in events] == [200, None]  # the hook is shared
        assert hasty.rate_limit == client.rate_limit
        assert client.with_options(concurrency=3).concurrency == 3
        await hasty.aclose()
        assert hasty.closed
        assert not client.closed
        with pytest.raises(ClientClosedError):
            await hasty.request("GET", "/customers/5")
        patient = client.with_options(timeout=5)
        assert (await patient.customers.get(5)).id == 5
    assert patient.closed
    with pytest.raises(ClientClosedError):
        await patient.request("GET", "/customers/5")
    with pytest.raises(ValueError, match="timeout"):
        client.with_options(timeout=-1)


async def test_closing_the_client_stops_the_streams_of_its_views(invoicing: FakeUphance) -> None:
    invoicing.latency = 0.02
    client = UphanceClient(token=invoicing.token, base_url=invoicing.url)
    async with client:
        stream = client.with_options(concurrency=2).paginate("/invoices", key="invoices")
        await stream.__anext__()
    with pytest.raises(ClientClosedError):
        await stream.__anext__()


async def test_the_hook_sees_every_attempt(
    invoicing: FakeUphance, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RequestEvent] = []
    calls = 0

    def hook(event: RequestEvent) -> None:
        nonlocal calls
        calls += 1
        events.append(event)
        if calls == 2:
            raise RuntimeError("a broken metrics backend")

    invoicing.password = "hook-password-1"
    invoicing.fault_rate, invoicing.faults = 0.3, ("503",)
    client = UphanceClient(
        email=invoicing.email,
        password="hook-password-1",
        base_url=invoicing.url,
        retry=RetryPolicy(max_attempts=20, backoff=0.001, max_backoff=0.01),
        on_request=hook,
    )
    async with client:
        async for _ in client.customers.stream(status="all"):
            pass
    assert len(events) == len(invoicing.requests)
    token = [e for e in events if e.url_path == "/oauth/token"]
    assert len(token) == 1
    assert (token[0].method, token[0].status, token[0].attempt) == ("POST", 200, 1)
    failed = [e for e in events if e.status == 503]
    assert failed
    assert all(isinstance(e.error, ServerError) for e in failed)
    assert any(e.attempt > 1 and e.status == 200 for e in events)
    assert all(e.elapsed >= 0 and "?" not in e.url_path for e in events)
    assert "on_request hook raised" in caplog.text
    with pytest.raises(AttributeError):
        events[0].status = 1  # type: ignore[misc]


async def test_the_hook_sees_throttling_and_connection_errors(
    invoicing: FakeUphance, unreachable_url: str
) -> None:
    events: list[RequestEvent] = []
    invoicing.rate_limit, invoicing.rate_burst = 5.0, 1
    invoicing._tokens = 0.0
    async with UphanceClient(
        token=invoicing.token, base_url=invoicing.url, retry=FAST, on_request=events.append
    ) as client:
        await client.customers.get(invoicing.ids()[0])
    assert events[0].throttled
    assert events[0].status == 429
    assert not events[-1].throttled
    events.clear()
    async with UphanceClient(
        token="t", base_url=unreachable_url, retry=ONCE, on_request=events.append
    ) as c:
        with pytest.raises(APIConnectionError):
            await c.customers.get(5)
    assert [(e.status, type(e.error).__name__) for e in events] == [(None, "APIConnectionError")]


def load_example(name: str) -> ModuleType:
    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_metrics_example_renders_prometheus_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load_example("request_metrics")
    await example.main()
    text = capsys.readouterr().out
    assert 'uphance_requests_total{method="GET",path="/customers",status="200"}' in text
    assert 'path="/customers/{id}"' in text
    assert "uphance_request_seconds_count" in text
    assert 'status="503"' in text


async def test_the_metrics_example_feeds_opentelemetry(invoicing: FakeUphance) -> None:
    metrics = pytest.importorskip("opentelemetry.metrics")
    example = load_example("request_metrics")
    recorded: list[tuple[str, float, dict[str, Any]]] = []

    class Instrument:
        def __init__(self, name: str) -> None:
            self.name = name

        def add(self, amount: float, attributes: dict[str, Any]) -> None:
            recorded.append((self.name, amount, attributes))

        record = add

    class Meter:
        def create_counter(self, name: str, unit: str) -> Instrument:
            return Instrument(name)

        def create_histogram(self, name: str, unit: str) -> Instrument:
            return Instrument(name)

    hook = example.opentelemetry_hook(Meter())
    real_hook = example.opentelemetry_hook(metrics.get_meter("uphance-tests"))
    async with UphanceClient(token=invoicing.token, base_url=invoicing.url) as client:
        await client.with_options().customers.get(invoicing.ids()[0])
    event = RequestEvent("GET", "/customers/5", 200, None, 0.01, 1, False)
    hook(event)
    real_hook(event)
    assert recorded[0] == (
        "uphance.requests",
        1,
        {
            "http.request.method": "GET",
            "url.template": "/customers/{id}",
            "http.response.status_code": 200,
            "uphance.attempt": 1,
        },
    )
    assert recorded[1][0] == "uphance.request.duration"


def test_hook_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    from uphance_async._events import call_hook

    def broken(event: RequestEvent) -> None:
        raise ValueError("no")

    with caplog.at_level(logging.ERROR, logger="uphance_async"):
        call_hook(broken, RequestEvent("GET", "/x", 200, None, 0.0, 1, False))
    assert "ignored" in caplog.text


_RECORDS: st.SearchStrategy[list[Any]] = st.lists(
    st.builds(dict, id=st.integers() | st.text(max_size=3) | st.none() | st.booleans())
    | st.builds(dict, name=st.text(max_size=3))
    | st.integers()
    | st.lists(st.integers(), max_size=2),
    max_size=12,
)


@given(_RECORDS)
def test_whole_page_checks_agree_with_the_checks_record_by_record(records: list[Any]) -> None:
    """A page the C-speed test passes is one each record check hands back unchanged."""
    from uphance_async.resources._lists import _PAGE_CHECKS

    assert len(_PAGE_CHECKS) == 2  # the generic check and the customers' one
    for check, whole in _PAGE_CHECKS.items():
        if whole(records):
            assert all(check(record) is record for record in records)
        else:
            with pytest.raises((TypeError, ValueError, cattrs.BaseValidationError)):
                list(map(check, records))
