"""Sign-in, token refresh, organisations, and the security pass, through real local servers."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import stat
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from uphance_async import Credentials, JSONFileTokenStore, Organisation, UphanceClient
from uphance_async.errors import APIStatusError, AuthenticationError, ResponseTooLargeError
from uphance_async.testing import FakeUphance, RecordedRequest

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def uphance() -> AsyncIterator[FakeUphance]:
    async with FakeUphance(customers=120, page_size=10, password=PASSWORD, seed=4) as fake:
        yield fake


def signed_in(server: FakeUphance, **kwargs: object) -> UphanceClient:
    options: dict[str, object] = {"email": server.email, "password": PASSWORD, **kwargs}
    return UphanceClient(base_url=server.url, **options)  # type: ignore[arg-type]


def customer_requests(server: FakeUphance) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.startswith("/customers")]


async def test_sign_in_once_then_use_the_token(uphance: FakeUphance) -> None:
    async with signed_in(uphance) as client:
        ids = [c.id async for c in client.customers.stream(status="all", concurrency=4)]
    assert ids == uphance.ids("all")
    assert uphance.token_requests == 1
    (sign_in,) = [r for r in uphance.requests if r.path == "/oauth/token"]
    assert sign_in.body == {
        "grant_type": "password",
        "email": uphance.email,
        "password": "<redacted>",
    }
    assert "Authorization" not in sign_in.headers
    assert all(r.authorized for r in customer_requests(uphance))


async def test_a_wrong_password_is_refused_without_leaking_it(
    uphance: FakeUphance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "hunter2-wrong-password"
    async with UphanceClient(email=uphance.email, password=secret, base_url=uphance.url) as api:
        with pytest.raises(AuthenticationError) as caught:
            await api.customers.page(1)
    error = caught.value
    assert "not correct" in str(error)
    assert error.path == "/oauth/token"
    text = "".join(traceback.format_exception(error)) + repr(error) + error.body + caplog.text
    assert secret not in text
    assert uphance.token_requests == 1
    assert customer_requests(uphance) == []


async def test_the_organisation_is_selected_before_the_token_is_used(uphance: FakeUphance) -> None:
    async with signed_in(uphance, organisation_id=9579) as client:
        await client.customers.page(1)
        uphance.expire_tokens()
        await client.customers.page(2)
    paths = [r.path for r in uphance.requests]
    assert paths[:3] == ["/oauth/token", "/organisations/set_current_org", "/customers"]
    assert all(r.organisation == 9579 for r in customer_requests(uphance) if r.authorized)
    selections = [r for r in uphance.requests if r.path.endswith("set_current_org")]
    assert [r.body for r in selections] == [{"organizationId": 9579}] * 2


async def test_many_requests_needing_a_token_cause_one_token_request(
    uphance: FakeUphance,
) -> None:
    async with signed_in(uphance) as client:
        pages = await asyncio.gather(
            *(client.customers.page(n, status="all") for n in range(1, 13))
        )
        assert sum(len(p.items) for p in pages) == 120
        assert uphance.token_requests == 1
        uphance.expire_tokens()
        pages = await asyncio.gather(
            *(client.customers.page(n, status="all") for n in range(1, 13))
        )
        assert sum(len(p.items) for p in pages) == 120
        assert uphance.token_requests == 2
    grants = [r.body["grant_type"] for r in uphance.requests if r.path == "/oauth/token"]
    assert grants == ["password", "refresh_token"]


async def test_a_refused_refresh_falls_back_to_the_password(uphance: FakeUphance) -> None:
    async with signed_in(uphance) as client:
        await client.customers.page(1)
        uphance.expire_tokens(revoke_refresh_tokens=True)
        await client.customers.page(2)
    grants = [r.body["grant_type"] for r in uphance.requests if r.path == "/oauth/token"]
    assert grants == ["password", "refresh_token", "password"]


async def test_short_lived_tokens_are_refreshed_before_they_expire() -> None:
    async with FakeUphance(
        customers=30, page_size=10, password=PASSWORD, token_lifetime=0.4
    ) as srv:
        async with signed_in(srv) as client:
            for _ in range(3):
                await client.customers.page(1)
                await asyncio.sleep(0.4)
            await client.customers.page(1)
        assert srv.token_requests == 4
        assert all(r.status == 200 for r in srv.requests)


async def test_organisations_are_listed_and_selected(uphance: FakeUphance) -> None:
    async with signed_in(uphance) as client:
        organisations = await client.organisations()
        assert organisations == (
            Organisation(id=9579, name="Uphance Demo"),
            Organisation(id=9580, name="Second Label"),
        )
        await client.set_organisation(9580)
        await client.customers.page(1)
        uphance.expire_tokens()
        await client.customers.page(1)
        with pytest.raises(ValueError, match="organisation id"):
            await client.set_organisation(0)
    assert [r.organisation for r in customer_requests(uphance) if r.authorized] == [9580, 9580]


async def test_a_static_token_can_select_an_organisation(uphance: FakeUphance) -> None:
    async with UphanceClient(token=uphance.token, base_url=uphance.url) as client:
        await client.set_organisation(9579)
        await client.customers.page(1)
    assert customer_requests(uphance)[0].organisation == 9579


async def test_a_token_store_spares_the_next_sign_in(uphance: FakeUphance, tmp_path: Path) -> None:
    store = JSONFileTokenStore(tmp_path / "tokens" / "uphance.json")
    async with signed_in(uphance, token_store=store) as client:
        await client.customers.page(1)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert PASSWORD not in store.path.read_text()
    async with signed_in(uphance, token_store=store) as client:
        await client.customers.page(1)
    assert uphance.token_requests == 1
    other = Credentials(email="someone.else@example.com", password=PASSWORD)
    async with UphanceClient(credentials=other, base_url=uphance.url, token_store=store) as api:
        with pytest.raises(AuthenticationError):
            await api.customers.page(1)
    assert uphance.token_requests == 2


async def test_a_corrupt_token_store_counts_as_empty(uphance: FakeUphance, tmp_path: Path) -> None:
    path = tmp_path / "uphance.json"
    path.write_text("{not json")
    async with signed_in(uphance, token_store=JSONFileTokenStore(path)) as client:
        await client.customers.page(1)
    assert uphance.token_requests == 1


async def test_no_secret_in_reprs_logs_or_errors(
    uphance: FakeUphance, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    store = JSONFileTokenStore(tmp_path / "t.json")
    client = signed_in(uphance, organisation_id=9579, token_store=store)
    async with client:
        await client.customers.page(1)
        uphance.expire_tokens()
        await client.customers.page(1)
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(1)
    token_data = store.path.read_text()
    secrets = [PASSWORD, *(value for value in token_data.split('"') if len(value) > 20)]
    assert len(secrets) >= 3
    texts = [
        repr(client),
        repr(client._auth),
        repr(store),
        repr(Credentials(email="a@b.com", password=PASSWORD)),
        str(caught.value),
        repr(caught.value),
        "".join(traceback.format_exception(caught.value)),
        caplog.text,
        repr(uphance.requests),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "t", "email": "a@b.com", "password": "p"}, "either"),
        ({"email": "a@b.com"}, "go together"),
        ({"password": "p"}, "go together"),
        ({"token": "t", "organisation_id": 5}, "organisation_id"),
        ({"email": "not-an-email", "password": "p"}, "email"),
        ({"email": "a@b.com", "password": ""}, "password"),
        ({"email": "a@b.com", "password": "p", "organisation_id": -1}, "organisation_id"),
        ({}, "either"),
    ],
)
def test_bad_sign_in_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UphanceClient(**kwargs)  # type: ignore[arg-type]


async def test_a_redirect_to_another_host_is_not_followed(
    serve_app: Callable[[web.Application], Awaitable[str]],
) -> None:
    seen: list[web.Request] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"customers": [], "meta": {}})

    other = web.Application()
    other.router.add_get("/{tail:.*}", elsewhere)
    other_url = await serve_app(other)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other_url}{request.path_qs}")

    first = web.Application()
    first.router.add_get("/{tail:.*}", redirect)
    async with UphanceClient(token="sekrit", base_url=await serve_app(first)) as api:
        with pytest.raises(APIStatusError) as caught:
            await api.customers.page(1)
    assert caught.value.status == 302
    assert seen == []


async def test_oversized_pages_are_refused_through_the_server() -> None:
    async with FakeUphance(customers=100, page_size=100) as server:
        client = UphanceClient(token=server.token, base_url=server.url, max_response_bytes=20_000)
        async with client:
            with pytest.raises(ResponseTooLargeError):
                await client.customers.page(1)
            with pytest.raises(ResponseTooLargeError):
                [c async for c in client.customers.stream()]


async def test_a_compressed_answer_is_capped_after_decompression(
    serve_app: Callable[[web.Application], Awaitable[str]],
) -> None:
    body = b'{"customers": [], "notes": "' + b" " * 2_000_000 + b'"}'
    packed = gzip.compress(body)

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=packed,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    app = web.Application()
    app.router.add_get("/customers", bomb)
    url = await serve_app(app)
    assert len(packed) < 20_000
    async with UphanceClient(token="t", base_url=url, max_response_bytes=100_000) as client:
        with pytest.raises(ResponseTooLargeError):
            await client.customers.page(1)
