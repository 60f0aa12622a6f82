"""Misuse is refused with an error that says what was wrong, never ignored."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from uphance_async import (
    ClientClosedError,
    RequestEvent,
    ResponseValidationError,
    UphanceClient,
)
from uphance_async.testing import FakeUphance


async def test_paginate_with_a_key_the_answer_lacks_names_it(client: UphanceClient) -> None:
    with pytest.raises(ResponseValidationError) as caught:
        async for _ in client.paginate("/customers", key="invoices"):
            pass
    message = str(caught.value)
    assert "'invoices'" in message
    assert "customers" in message
    assert "meta" in message
    assert caught.value.json_path == "$.invoices"


async def test_an_async_on_request_hook_is_refused_at_construction() -> None:
    async def hook(event: RequestEvent) -> None:
        pass

    class Hook:
        async def __call__(self, event: RequestEvent) -> None:
            pass

    for bad in (hook, Hook()):
        with pytest.raises(TypeError, match="async def"):
            UphanceClient(token="t" * 16, on_request=bad)  # type: ignore[arg-type]


async def test_a_hook_returning_a_coroutine_is_logged_not_leaked(
    server: FakeUphance, caplog: pytest.LogCaptureFixture
) -> None:
    async def later(event: RequestEvent) -> None:
        pass

    def hook(event: RequestEvent) -> Any:
        return later(event)

    async with UphanceClient(token=server.token, base_url=server.url, on_request=hook) as api:
        await api.customers.get(server.ids()[0])
    assert "returned an awaitable" in caplog.text


def test_one_client_in_two_event_loops_says_why(server_thread_url: tuple[str, str]) -> None:
    token, url = server_thread_url
    client = UphanceClient(token=token, base_url=url)

    async def first() -> None:
        await client.request("GET", "/customers", params={"page": 1})

    async def second() -> None:
        await client.request("GET", "/customers", params={"page": 1})

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
        with pytest.raises(ClientClosedError, match="event loop"):
            asyncio.run(second())
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()


async def test_closed_client_and_closed_view_each_say_which(server: FakeUphance) -> None:
    client = UphanceClient(token=server.token, base_url=server.url)
    async with client:
        view = client.with_options(timeout=5)
        await view.aclose()
        with pytest.raises(ClientClosedError, match="this view is closed"):
            await view.customers.get(server.ids()[0])
    with pytest.raises(ClientClosedError, match="this UphanceClient is closed"):
        await client.customers.get(server.ids()[0])


async def test_a_misspelt_stream_option_is_refused(client: UphanceClient) -> None:
    with pytest.raises(TypeError, match="unexpected stream options: concurency"):
        client.customers.stream(concurency=4)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="unexpected stream options: pages"):
        client.customers.stream(raw=True, pages=2)  # type: ignore[call-overload]


@pytest.fixture
def server_thread_url(thread_served: Any) -> tuple[str, str]:
    fake = thread_served(FakeUphance(customers=20, page_size=10))
    logging.getLogger("uphance_async").setLevel(logging.WARNING)
    return fake.token, fake.url
