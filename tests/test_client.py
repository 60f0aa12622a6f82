"""The client's lifecycle, configuration and secrets."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

import uphance_async
from uphance_async import UphanceClient
from uphance_async.errors import ClientClosedError
from uphance_async.testing import FakeUphance

TOKEN = "tok-ABCDEF-123456"


async def test_closing_twice_is_harmless(server: FakeUphance) -> None:
    client = UphanceClient(token=server.token, base_url=server.url)
    async with client:
        await client.customers.page(1)
    await client.aclose()
    assert client.closed


async def test_a_closed_client_refuses_requests(server: FakeUphance) -> None:
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        pass
    with pytest.raises(ClientClosedError, match="closed"):
        await client.customers.page(1)
    with pytest.raises(ClientClosedError):
        [c async for c in client.customers.stream()]


async def test_without_async_with_the_session_opens_lazily(server: FakeUphance) -> None:
    client = UphanceClient(token=server.token, base_url=server.url)
    try:
        assert (await client.customers.page(1)).items
    finally:
        await client.aclose()


async def test_a_given_session_is_used_and_left_open(server: FakeUphance) -> None:
    async with aiohttp.ClientSession() as session:
        async with UphanceClient(token=server.token, base_url=server.url, session=session) as api:
            await api.customers.page(1)
        assert not session.closed
        async with UphanceClient(token=server.token, base_url=server.url, session=session) as api:
            await api.customers.page(1)
    assert len(server.requests) == 2


async def test_a_closed_given_session_is_a_clear_error(server: FakeUphance) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(ClientClosedError, match="session given"):
        async with UphanceClient(token=server.token, base_url=server.url, session=session):
            pass
    with pytest.raises(ClientClosedError, match="session given"):
        await UphanceClient(token="x", base_url=server.url, session=session).customers.page(1)


def test_repr_hides_the_token() -> None:
    client = UphanceClient(token=TOKEN)
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client._auth)
    assert TOKEN not in str(vars(client.customers))


@pytest.mark.parametrize(
    "url",
    [
        "http://api.uphance.com",
        "http://localhost.evil.example",
        "ftp://api.uphance.com",
        "api.uphance.com",
        "https://api.uphance.com?x=1",
        "https://user:pw@api.uphance.com",
    ],
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        UphanceClient(token=TOKEN, base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:1", "http://[::1]:80"]
)
def test_loopback_may_be_plain_http(url: str) -> None:
    assert UphanceClient(token=TOKEN, base_url=url).base_url.host


def test_insecure_must_be_explicit() -> None:
    client = UphanceClient(token=TOKEN, base_url="http://uphance.internal", allow_insecure=True)
    assert client.base_url.scheme == "http"


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"token": None}, "token"),
        ({"token": ""}, "token"),
        ({"token": "a\r\nb"}, "token"),
        ({"token": TOKEN, "concurrency": 0}, "concurrency"),
        ({"token": TOKEN, "max_in_flight": -1}, "max_in_flight"),
        ({"token": TOKEN, "timeout": 0}, "timeout"),
        ({"token": TOKEN, "rate_limit": 0}, "rate_limit"),
        ({"token": TOKEN, "max_response_bytes": 10}, "max_response_bytes"),
    ],
)
def test_bad_configuration_is_a_value_error(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        UphanceClient(**kwargs)  # type: ignore[arg-type]


def test_the_suite_runs_against_the_installed_package() -> None:
    checkout = Path(__file__).resolve().parent.parent
    installed = Path(uphance_async.__file__).resolve()
    if os.environ.get("CI"):
        assert checkout not in installed.parents, installed
    assert (installed.parent / "py.typed").exists()
