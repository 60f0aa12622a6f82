"""Request building, error mapping, retries and decoding, against aioresponses (no server)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aioresponses import CallbackResult
from yarl import URL

from uphance_async import NewCustomer, RetryPolicy, UphanceClient, __version__
from uphance_async._protocol import error_message, path_of
from uphance_async._retry import parse_retry_after
from uphance_async.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerError,
    UnprocessableEntityError,
    UphanceError,
)

BASE = "https://api.uphance.test"
TOKEN = "s3cr3t-token-value"
CUSTOMER = {"id": 5, "name": "Acme"}
ANY_CUSTOMERS = re.compile(r"^https://api\.uphance\.test/customers.*$")
FAST = RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.002, max_retry_after=0.01)


@pytest.fixture
async def client() -> AsyncIterator[UphanceClient]:
    async with UphanceClient(token=TOKEN, base_url=BASE, retry=FAST) as api:
        yield api


def sent(mocked: Any) -> list[tuple[str, URL, dict[str, Any]]]:
    return [
        (method, url, call.kwargs)
        for (method, url), calls in mocked.requests.items()
        for call in calls
    ]


async def test_headers_and_query_are_sent(mocked: Any, client: UphanceClient) -> None:
    mocked.get(ANY_CUSTOMERS, payload={"customers": [CUSTOMER], "meta": {"current_page": 2}})
    page = await client.customers.page(2, status="inactive", agent_contact="+1 202-555-0137")
    assert page.items[0].name == "Acme"
    ((method, url, kwargs),) = sent(mocked)
    assert method == "GET"
    assert url.path == "/customers"
    assert url.query == {
        "page": "2",
        "by_status": "inactive",
        "by_agents_contact": "+1 202-555-0137",
    }
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"uphance-async/{__version__}")
    assert kwargs["allow_redirects"] is False
    assert kwargs["timeout"].total == 60.0
    assert kwargs["timeout"].connect == 10.0


async def test_post_body_is_camel_case_json(mocked: Any, client: UphanceClient) -> None:
    mocked.post(f"{BASE}/customers", status=201, payload={"customer": {"id": 9, "name": "Acme"}})
    created = await client.customers.create(NewCustomer(name="Acme", channel_id=6932))
    assert created.id == 9
    ((method, _, kwargs),) = sent(mocked)
    assert method == "POST"
    assert kwargs["data"] == b'{"name":"Acme","channelId":6932}'
    assert kwargs["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIStatusError),
        (422, UnprocessableEntityError),
        (501, ServerError),
        (301, APIStatusError),
    ],
)
async def test_statuses_map_to_typed_errors(
    mocked: Any, client: UphanceClient, status: int, kind: type[APIStatusError]
) -> None:
    mocked.get(
        f"{BASE}/customers/5",
        status=status,
        payload={"error": "nope"},
        headers={"X-Request-Id": "req-1"},
    )
    with pytest.raises(kind) as caught:
        await client.customers.get(5)
    error = caught.value
    assert type(error) is kind
    assert (error.status, error.method, error.path) == (status, "GET", "/customers/5")
    assert error.request_id == "req-1"
    assert "nope" in str(error)
    assert TOKEN not in str(error) + repr(error)
    assert len(sent(mocked)) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": "invalid_grant", "error_description": "bad password"}', "bad password"),
        (b'{"errors": {"name": ["can\'t be blank"]}}', "name: can't be blank"),
        (b'{"message": "Customer not found"}', "Customer not found"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "502 Bad Gateway"),
        (b"plain words", "plain words"),
        (b"", ""),
    ],
)
def test_error_messages_are_extracted(body: bytes, expected: str) -> None:
    assert error_message(body) == expected


async def test_unprocessable_body_is_kept(mocked: Any, client: UphanceClient) -> None:
    mocked.post(f"{BASE}/customers", status=422, payload={"errors": {"name": ["is taken"]}})
    with pytest.raises(UnprocessableEntityError) as caught:
        await client.customers.create(NewCustomer(name="Acme"))
    assert "is taken" in caught.value.body
    assert "name: is taken" in str(caught.value)


async def test_get_is_retried_on_server_errors(mocked: Any, client: UphanceClient) -> None:
    mocked.get(f"{BASE}/customers/5", status=503, body="<html>down</html>")
    mocked.get(f"{BASE}/customers/5", status=502)
    mocked.get(f"{BASE}/customers/5", payload={"customer": CUSTOMER})
    assert (await client.customers.get(5)).id == 5
    assert len(sent(mocked)) == 3


async def test_retries_are_bounded(mocked: Any, client: UphanceClient) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/customers/5", status=500, body="boom")
    with pytest.raises(ServerError):
        await client.customers.get(5)
    assert len(sent(mocked)) == 3


async def test_post_is_not_retried_on_server_errors(mocked: Any, client: UphanceClient) -> None:
    mocked.post(f"{BASE}/customers", status=503)
    mocked.post(f"{BASE}/customers", status=201, payload={"customer": CUSTOMER})
    with pytest.raises(ServerError):
        await client.customers.create(NewCustomer(name="Acme"))
    assert len(sent(mocked)) == 1


async def test_post_is_retried_on_429(mocked: Any, client: UphanceClient) -> None:
    mocked.post(f"{BASE}/customers", status=429, headers={"Retry-After": "0"})
    mocked.post(f"{BASE}/customers", status=201, payload={"customer": CUSTOMER})
    assert (await client.customers.create(NewCustomer(name="Acme"))).id == 5
    assert len(sent(mocked)) == 2


async def test_rate_limit_error_carries_retry_after(mocked: Any) -> None:
    async with UphanceClient(token=TOKEN, base_url=BASE, retry=RetryPolicy(max_attempts=1)) as api:
        mocked.get(f"{BASE}/customers/5", status=429, headers={"Retry-After": "7"})
        with pytest.raises(RateLimitError) as caught:
            await api.customers.get(5)
    assert caught.value.retry_after == 7.0


async def test_no_retry_on_other_client_errors(mocked: Any, client: UphanceClient) -> None:
    mocked.get(f"{BASE}/customers/5", status=404)
    mocked.get(f"{BASE}/customers/5", payload={"customer": CUSTOMER})
    with pytest.raises(NotFoundError):
        await client.customers.get(5)
    assert len(sent(mocked)) == 1


async def test_connection_errors_are_typed_and_retried(mocked: Any, client: UphanceClient) -> None:
    import aiohttp

    mocked.get(f"{BASE}/customers/5", exception=aiohttp.ServerDisconnectedError())
    mocked.get(f"{BASE}/customers/5", exception=aiohttp.ClientPayloadError("cut"))
    mocked.get(f"{BASE}/customers/5", exception=aiohttp.ClientOSError(104, "reset"))
    with pytest.raises(APIConnectionError) as caught:
        await client.customers.get(5)
    assert not isinstance(caught.value, APITimeoutError)
    assert len(sent(mocked)) == 3


async def test_timeouts_are_typed(mocked: Any, client: UphanceClient) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/customers/5", exception=TimeoutError())
    with pytest.raises(APITimeoutError):
        await client.customers.get(5)


async def test_non_json_success_is_retried_then_typed(mocked: Any, client: UphanceClient) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/customers/5", body="<html>Maintenance</html>", content_type="text/html")
    with pytest.raises(ResponseValidationError) as caught:
        await client.customers.get(5)
    assert "not JSON" in str(caught.value)
    assert len(sent(mocked)) == 3


@pytest.mark.parametrize(
    "payload",
    [
        {"customer": CUSTOMER},
        CUSTOMER,
        {"data": CUSTOMER},
        {"customers": [CUSTOMER]},
        [CUSTOMER],
    ],
)
async def test_single_objects_bare_or_wrapped(
    mocked: Any, client: UphanceClient, payload: Any
) -> None:
    mocked.get(f"{BASE}/customers/5", payload=payload)
    customer = await client.customers.get(5)
    assert (customer.id, customer.name) == (5, "Acme")


async def test_an_empty_list_for_a_lookup_is_not_found(mocked: Any, client: UphanceClient) -> None:
    mocked.get(ANY_CUSTOMERS, payload={"customers": []})
    with pytest.raises(NotFoundError):
        await client.customers.get_by_email("a@b.com")


@pytest.mark.parametrize(
    "payload",
    [{"contacts": [{"id": 1}]}, {"people": [{"id": 1}]}, [{"id": 1}], {"anything": [{"id": 1}]}],
)
async def test_lists_bare_or_wrapped(mocked: Any, client: UphanceClient, payload: Any) -> None:
    mocked.get(f"{BASE}/customers/5/contacts", payload=payload)
    (contact,) = await client.customers.contacts(5)
    assert contact.id == 1


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"customers": [{"id": 1}, {"name": "no id"}]}, "$.customers[1].id"),
        ({"customers": [{"id": 1}, "text"]}, "$.customers[1]"),
        ({"customers": [{"id": 1}], "meta": {"total_pages": "many"}}, "$.meta.total_pages"),
        ({"nothing": "here"}, "$"),
        ("just a string", "$"),
    ],
)
async def test_malformed_pages_name_the_path(
    mocked: Any, client: UphanceClient, payload: Any, path: str
) -> None:
    mocked.get(ANY_CUSTOMERS, payload=payload)
    with pytest.raises(ResponseValidationError) as caught:
        await client.customers.page(1)
    assert caught.value.path == path
    assert caught.value.url_path == "/customers"


async def test_a_page_without_meta_has_empty_meta(mocked: Any, client: UphanceClient) -> None:
    mocked.get(ANY_CUSTOMERS, payload=[CUSTOMER])
    page = await client.customers.page(1)
    assert page.items[0].id == 5
    assert page.meta.next_page is None


async def test_oversized_answers_are_refused(mocked: Any) -> None:
    big = {"customer": {"id": 1, "notes": "x" * 5000}}
    async with UphanceClient(token=TOKEN, base_url=BASE, max_response_bytes=2048) as api:
        mocked.get(f"{BASE}/customers/1", payload=big)
        with pytest.raises(ResponseTooLargeError):
            await api.customers.get(1)


async def test_no_aiohttp_or_cattrs_exception_escapes(mocked: Any, client: UphanceClient) -> None:
    mocked.get(f"{BASE}/customers/5", payload={"customer": {"id": {"nested": True}}})
    with pytest.raises(UphanceError):
        await client.customers.get(5)


async def test_retry_after_is_honoured(mocked: Any) -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=2, backoff=0, max_retry_after=0.05)

    def record(url: URL, **kwargs: Any) -> CallbackResult:
        waits.append(1)
        return CallbackResult(status=429, headers={"Retry-After": "10"})

    async with UphanceClient(token=TOKEN, base_url=BASE, retry=policy) as api:
        mocked.get(f"{BASE}/customers/5", callback=record)
        mocked.get(f"{BASE}/customers/5", payload={"customer": CUSTOMER})
        import time

        started = time.monotonic()
        assert (await api.customers.get(5)).id == 5
        assert time.monotonic() - started >= 0.04
    assert waits == [1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0, max_retry_after=30)
    delays = [policy.delay(attempt) for attempt in range(1, 10) for _ in range(50)]
    assert min(delays) >= 0
    assert max(delays) <= 4.0
    assert len(set(delays)) > 100
    assert policy.delay(1, retry_after=10) >= 10
    assert policy.delay(1, retry_after=1000) <= 30


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (("customers", 5), "/customers/5"),
        (("customers", "a/../b?x@y.com"), "/customers/a%2F..%2Fb%3Fx%40y.com"),
        (("customers", "a#b%2F@c"), "/customers/a%23b%252F%40c"),
        (("customers", "jöhn@exämple.com"), "/customers/j%C3%B6hn%40ex%C3%A4mple.com"),
    ],
)
def test_path_segments_are_percent_encoded(segments: tuple[Any, ...], expected: str) -> None:
    assert path_of(*segments) == expected


async def test_email_cannot_change_path_or_query(mocked: Any, client: UphanceClient) -> None:
    mocked.get(ANY_CUSTOMERS, payload={"customer": CUSTOMER})
    await client.customers.get_by_email("a/../b?x@y.com")
    ((_, url, _),) = sent(mocked)
    assert url.raw_path == "/customers/a%2F..%2Fb%3Fx%40y.com"
    assert url.query_string == ""


async def test_lists_nested_in_the_only_object(mocked: Any, client: UphanceClient) -> None:
    mocked.get(f"{BASE}/customers/5/contacts", payload={"customer": {"people": [{"id": 3}]}})
    (contact,) = await client.customers.contacts(5)
    assert contact.id == 3


async def test_a_meta_without_next_page_is_completed(mocked: Any, client: UphanceClient) -> None:
    mocked.get(
        ANY_CUSTOMERS,
        payload={"customers": [CUSTOMER], "meta": {"current_page": 1, "total_pages": 2}},
    )
    assert (await client.customers.page(1)).meta.next_page == 2
    mocked.get(
        ANY_CUSTOMERS,
        payload={"customers": [CUSTOMER], "meta": {"current_page": 2, "total_pages": 2}},
    )
    assert (await client.customers.page(2)).meta.next_page is None
    mocked.get(
        ANY_CUSTOMERS,
        payload={
            "customers": [CUSTOMER],
            "meta": {"current_page": 1, "next_page": None, "total_pages": 2},
        },
    )
    assert (await client.customers.page(1)).meta.next_page is None


@pytest.mark.parametrize(
    "payload",
    [{"organisations": [{"id": 9, "name": "A"}]}, [{"id": 9, "name": "A"}]],
)
async def test_organisations_bare_or_wrapped(
    mocked: Any, client: UphanceClient, payload: Any
) -> None:
    mocked.get(f"{BASE}/organisations", payload=payload)
    (organisation,) = await client.organisations()
    assert (organisation.id, organisation.name) == (9, "A")


async def test_bad_organisations_name_the_path(mocked: Any, client: UphanceClient) -> None:
    mocked.get(f"{BASE}/organisations", payload={"organisations": [{"id": 9}, {"name": "x"}]})
    with pytest.raises(ResponseValidationError) as caught:
        await client.organisations()
    assert caught.value.path == "$.organisations[1].id"
    assert caught.value.url_path == "/organisations"
