"""Servers written to misbehave, on 127.0.0.1: every case ends in bounded time with a typed error,
the event loop stays responsive, and no secret the client holds is repeated."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp import web

from uphance_async import NewCustomer, RetryPolicy, UphanceClient
from uphance_async.errors import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    PaginationError,
    ServerError,
    UnprocessableEntityError,
    UphanceError,
)

Serve = Callable[[web.Application], Awaitable[str]]
Heartbeat = Callable[[], AbstractAsyncContextManager[list[float]]]
FAST = RetryPolicy(max_attempts=2, backoff=0.001, max_backoff=0.01, max_retry_after=0.05)
TOKEN = "tok-3f9a/+b=c d"  # characters that URL and JSON encodings change
PASSWORD = 'p@ss "w\u00f6rd"/+&x'


def app_with(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> Any:
    app = web.Application()
    for route, handler in routes.items():
        method, path = route.split(" ", 1)
        app.router.add_route(method, path, handler)
    return app


HOSTILE_PAGE = (">" + "<" * 200_000).encode()


async def test_a_hostile_error_page_does_not_stall_the_loop(
    serve_app: Serve, heartbeat: Heartbeat
) -> None:
    async def error_page(request: web.Request) -> web.Response:
        return web.Response(status=500, body=HOSTILE_PAGE, content_type="text/html")

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(status=200, body=HOSTILE_PAGE, content_type="text/html")

    url = await serve_app(app_with({"GET /customers/{id}": error_page, "GET /customers": not_json}))
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        async with heartbeat() as longest:
            with pytest.raises(ServerError):
                await client.customers.get(5)
            with pytest.raises(UphanceError):
                async for _ in client.customers.stream():
                    pass
        assert longest[0] < 0.1


def deep_errors(depth: int) -> bytes:
    return ('{"errors": ' + "[" * depth + '"too deep"' + "]" * depth + "}").encode()


async def test_deeply_nested_error_bodies_are_typed_errors(serve_app: Serve) -> None:
    async def refuse(request: web.Request) -> web.Response:
        status = 422 if request.method == "POST" else 500
        return web.Response(status=status, body=deep_errors(600), content_type="application/json")

    url = await serve_app(app_with({"GET /customers/{id}": refuse, "POST /customers": refuse}))
    url_list = await serve_app(app_with({"GET /customers": refuse}))
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(ServerError, match="HTTP 500"):
            await client.customers.get(5)
        with pytest.raises(UnprocessableEntityError):
            await client.customers.create(NewCustomer(name="Deep"))
    async with UphanceClient(token=TOKEN, base_url=url_list, retry=FAST) as client:
        with pytest.raises(ServerError):
            async for _ in client.customers.stream():
                pass


async def drain(stream: Any, into: list[int]) -> None:
    async for customer in stream:
        into.append(customer.id)


def page(items: list[Any], **meta: Any) -> web.Response:
    return web.json_response({"customers": items, "meta": meta})


async def test_pagination_that_never_ends_is_a_typed_error(serve_app: Serve) -> None:
    served: list[int] = []

    async def same_items(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        served.append(number)
        return page(
            [{"id": 1}, {"id": 2}], current_page=number, next_page=number + 1, total_pages=3
        )

    url = await serve_app(app_with({"GET /customers": same_items}))
    seen: list[int] = []
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(PaginationError) as caught:
            await drain(client.customers.stream(concurrency=2), seen)
    assert seen == [1, 2]
    assert 2 <= caught.value.page <= 8
    assert str(caught.value.page) in str(caught.value)
    assert max(served) < 30
    assert caught.value.checkpoint is not None


async def test_pages_far_past_the_announced_total_are_a_typed_error(serve_app: Serve) -> None:
    async def endless(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        items = [{"id": number * 10 + n} for n in range(10)]
        return page(items, current_page=number, next_page=number + 1, total_pages=3)

    url = await serve_app(app_with({"GET /customers": endless}))
    seen: list[int] = []
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(PaginationError, match="far past the 3 pages") as caught:
            await drain(client.customers.stream(concurrency=4), seen)
    assert caught.value.page == 17
    assert len(seen) == 160  # every page up to the last one allowed, then the error


async def test_total_count_alone_carries_the_stream_to_the_end(serve_app: Serve) -> None:
    async def counted(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        items = [{"id": (number - 1) * 10 + n + 1} for n in range(10)] if number <= 3 else []
        return page(items, current_page=number, total_count=30)

    url = await serve_app(app_with({"GET /customers": counted}))
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        ids = [c.id async for c in client.customers.stream()]
    assert ids == list(range(1, 31))


async def test_an_id_sent_as_a_string_and_a_number_is_one_customer(serve_app: Serve) -> None:
    async def mixed(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        pages: list[list[Any]] = [[{"id": 7}, {"id": 8}], [{"id": "7"}, {"id": 9}]]
        items = pages[number - 1]
        return page(items, current_page=number, total_pages=2, next_page=2 if number < 2 else None)

    url = await serve_app(app_with({"GET /customers": mixed}))
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        stream = client.customers.stream()
        assert [c.id async for c in stream] == [7, 8, 9]
        assert stream.stats.duplicates_dropped == 1


@pytest.mark.parametrize("attempt", range(10))
async def test_closing_the_client_mid_stream_raises_client_closed(
    serve_app: Serve, attempt: int
) -> None:
    async def slow(request: web.Request) -> web.Response:
        number = int(request.query["page"])
        await asyncio.sleep(0.05 if number > 1 else 0)
        items = [{"id": number * 100 + n} for n in range(100)]
        return page(items, current_page=number, next_page=number + 1, total_pages=50)

    url = await serve_app(app_with({"GET /customers": slow}))
    client = UphanceClient(token=TOKEN, base_url=url, retry=FAST)
    got = 0

    async def consume() -> None:
        nonlocal got
        async for _ in client.customers.stream(concurrency=2):
            got += 1
            if got % 150 == 0:
                await asyncio.sleep(0)

    async with client:
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.02 + attempt * 0.015)
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 5)


def secret_forms(secret: str) -> list[str]:
    escaped = [json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    return [secret, quote(secret, safe=""), quote_plus(secret), *escaped]


def assert_never_shown(error: BaseException, secrets: list[str], logs: str) -> None:
    texts = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        logs,
    ]
    if isinstance(error, APIStatusError):
        texts += [error.body, error.message, repr(dict(error.headers))]
    for secret in secrets:
        for form in secret_forms(secret):
            for text in texts:
                assert form not in text, (form, text[:300])


async def echo(request: web.Request, status: int) -> web.Response:
    """Answer ``status`` with everything the client sent, as an over-helpful server might."""
    sent = await request.text()
    header = request.headers.get("Authorization", "")
    body = {
        "error": f"you sent {sent} with {header}",
        "raw": sent,
        "quoted": quote(sent),
        "auth": header,
    }
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"X-Echo": quote(header)},
    )


@pytest.mark.parametrize("status", [401, 422, 502])
async def test_an_echoed_token_is_never_repeated(
    serve_app: Serve, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return await echo(request, status)

    url = await serve_app(app_with({"GET /customers/{id}": answer}))
    caplog.set_level(logging.DEBUG, logger="uphance_async")
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(5)
    assert "<redacted>" in caught.value.body
    assert_never_shown(caught.value, [TOKEN], caplog.text)


@pytest.mark.parametrize("password", [PASSWORD, "plain-password-123"])
@pytest.mark.parametrize("status", [500, 429, 503])
async def test_an_echoed_password_is_never_repeated(
    serve_app: Serve, status: int, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return await echo(request, status)

    url = await serve_app(app_with({"POST /oauth/token": answer}))
    caplog.set_level(logging.DEBUG, logger="uphance_async")
    client = UphanceClient(email="me@example.com", password=password, base_url=url, retry=FAST)
    async with client:
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(5)
    assert_never_shown(caught.value, [password], caplog.text)


def token_app(on_refresh: Callable[[web.Request], Awaitable[web.Response]], log: list[str]) -> Any:
    """Signs in with a token already due for renewal; refreshing answers ``on_refresh``."""

    async def token(request: web.Request) -> web.Response:
        body = await request.json()
        log.append(body["grant_type"])
        if body["grant_type"] == "refresh_token":
            return await on_refresh(request)
        return web.json_response(
            {
                "access_token": "at-" + TOKEN,
                "refresh_token": "rt-" + TOKEN,
                "created_at": time.time() - 1000,
                "expires_in": 100,
            }
        )

    async def customer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return web.json_response({"customer": {"id": int(request.match_info["id"])}})

    return app_with({"POST /oauth/token": token, "GET /customers/{id}": customer})


async def test_an_echoed_refresh_token_is_never_repeated(
    serve_app: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return await echo(request, 503)

    url = await serve_app(token_app(refuse, []))
    caplog.set_level(logging.DEBUG, logger="uphance_async")
    client = UphanceClient(email="me@example.com", password=PASSWORD, base_url=url, retry=FAST)
    async with client:
        assert (await client.customers.get(5)).id == 5
        with pytest.raises(ServerError) as caught:
            await client.customers.get(6)
    assert_never_shown(caught.value, ["rt-" + TOKEN, "at-" + TOKEN, PASSWORD], caplog.text)


async def test_a_failing_token_endpoint_gets_one_request_for_every_waiting_caller(
    serve_app: Serve,
) -> None:
    grants: list[str] = []

    async def fail(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response({"error": "down"}, status=500)

    url = await serve_app(token_app(fail, grants))
    retry = RetryPolicy(max_attempts=1, backoff=0.3)
    client = UphanceClient(email="me@example.com", password=PASSWORD, base_url=url, retry=retry)
    async with client:
        assert (await client.customers.get(1)).id == 1
        assert grants == ["password"]
        results = await asyncio.gather(
            *(client.customers.get(n) for n in range(2, 52)), return_exceptions=True
        )
        assert all(isinstance(r, ServerError) for r in results)
        assert grants == ["password", "refresh_token"]
        started = time.monotonic()
        with pytest.raises(ServerError):
            await client.customers.get(60)
        assert time.monotonic() - started >= 0.25  # the next flight waited for its backoff
        assert grants == ["password", "refresh_token", "refresh_token"]


@pytest.mark.parametrize("token", ["a\x00b", "tok\x7f", "tok\r\nX-Evil: 1", "t\u200bk", "\x1b[31m"])
def test_tokens_with_control_characters_are_refused_at_once(token: str) -> None:
    with pytest.raises(ValueError, match=r"control characters|line breaks"):
        UphanceClient(token=token)


async def test_connection_errors_keep_their_cause(unreachable_url: str) -> None:
    async with UphanceClient(token=TOKEN, base_url=unreachable_url, retry=FAST) as c:
        with pytest.raises(APIConnectionError) as caught:
            await c.customers.get(5)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert "Connect call failed" in "".join(traceback.format_exception(caught.value))
    assert_never_shown(caught.value, [TOKEN], "")
