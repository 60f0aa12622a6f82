"""No piece of a secret (eight characters of it or more) in any text the client produces, and
every public error crosses a process boundary (pickle) with its type and fields."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import uphance_async
from uphance_async import (
    APIStatusError,
    Checkpoint,
    Credentials,
    RequestEvent,
    RetryPolicy,
    UphanceClient,
    UphanceError,
)
from uphance_async._redact import clip, redact, redact_headers
from uphance_async.cli import main

Serve = Callable[[web.Application], Awaitable[str]]
FAST = RetryPolicy(max_attempts=2, backoff=0.001, max_backoff=0.01, max_retry_after=0.05)
TOKEN = "Tk7q2LmZ9xWv4RbN8sYc3HdJ6fGp1QaE"  # 32 characters
PASSWORD = "correct-horse-battery-staple-31"  # 31 characters
FRAGMENT = 8


def fragments(secret: str) -> list[str]:
    return [secret[n : n + FRAGMENT] for n in range(len(secret) - FRAGMENT + 1)]


def assert_no_fragment(texts: list[str], secret: str) -> None:
    for text in texts:
        for piece in fragments(secret):
            assert piece not in text, (piece, text[:400])


def texts_of(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, APIStatusError):
        texts += [error.body, error.message, repr(list(error.headers.items()))]
    return texts


def app_answering(status: int, body: bytes | str, **headers: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers=headers)

    app = web.Application()
    app.router.add_get("/customers/{id}", answer)
    return app


async def failure_texts(
    url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """Every text one failing get() produces: the error, the hook's events, the logs, and the
    command line's stderr for the same call."""
    events: list[RequestEvent] = []
    caplog.set_level(logging.DEBUG, logger="uphance_async")
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST, on_request=events.append) as c:
        with pytest.raises(UphanceError) as caught:
            await c.customers.get(5)
    args = ["customers", "get", "5", "--token", TOKEN, "--base-url", url, "--max-attempts", "2"]
    code = await asyncio.to_thread(main, args)
    assert code != 0
    stderr = capsys.readouterr().err
    assert stderr.strip()
    return [
        *texts_of(caught.value),
        *(str(event.error) for event in events),
        caplog.text,
        stderr,
    ]


def around(position: int, secret: str, length: int = 400) -> str:
    """Text of ``length`` characters with ``secret`` starting at ``position``."""
    return ("a" * position + secret).ljust(length, "b")


@pytest.mark.parametrize("start", [280, 285, 290, 299])
async def test_a_secret_across_the_message_cut_leaves_no_fragment(
    serve_app: Serve,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    start: int,
) -> None:
    body = json.dumps({"error": around(start, TOKEN)})
    url = await serve_app(app_answering(422, body, **{"Content-Type": "application/json"}))
    assert_no_fragment(await failure_texts(url, caplog, capsys), TOKEN)


async def test_a_secret_retried_on_502_leaves_no_fragment_in_the_warning(
    serve_app: Serve, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"message": around(290, TOKEN)})
    url = await serve_app(app_answering(502, body, **{"Content-Type": "application/json"}))
    texts = await failure_texts(url, caplog, capsys)
    assert "retry 1 of 1" in caplog.text
    assert_no_fragment(texts, TOKEN)


@pytest.mark.parametrize("start", [40, 60, 70, 75])
async def test_a_secret_across_the_not_json_excerpt_leaves_no_fragment(
    serve_app: Serve,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    start: int,
) -> None:
    url = await serve_app(app_answering(200, "z" * start + TOKEN + " tail"))
    assert_no_fragment(await failure_texts(url, caplog, capsys), TOKEN)


async def test_a_secret_after_4_kib_of_tags_leaves_no_fragment(
    serve_app: Serve, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    page = "<b>" * 1360 + TOKEN + "</b> tail"  # the token straddles the 4 KiB that are read
    url = await serve_app(app_answering(500, page, **{"Content-Type": "text/html"}))
    assert_no_fragment(await failure_texts(url, caplog, capsys), TOKEN)


@pytest.mark.parametrize("start", [270, 285, 295])
async def test_a_password_across_the_cut_of_a_refused_sign_in_leaves_no_fragment(
    serve_app: Serve, caplog: pytest.LogCaptureFixture, start: int
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": "invalid_grant", "error_description": around(start, PASSWORD)}, status=401
        )

    app = web.Application()
    app.router.add_post("/oauth/token", refuse)
    url = await serve_app(app)
    caplog.set_level(logging.DEBUG, logger="uphance_async")
    credentials = Credentials("user@example.com", PASSWORD)
    async with UphanceClient(credentials=credentials, base_url=url, retry=FAST) as client:
        with pytest.raises(UphanceError) as caught:
            await client.customers.get(5)
    assert "sign-in refused" in str(caught.value)
    assert_no_fragment([*texts_of(caught.value), caplog.text], PASSWORD)


async def test_a_header_named_after_the_token_is_redacted(serve_app: Serve) -> None:
    url = await serve_app(app_answering(404, "no such customer", **{f"X-{TOKEN}": "1"}))
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(5)
    assert "X-<redacted>" in caught.value.headers
    assert_no_fragment(texts_of(caught.value), TOKEN)


@pytest.mark.parametrize(
    "user", ["", "u", "us", "usr", "someone@example.com"], ids=lambda user: f"user={user!r}"
)
@pytest.mark.parametrize("token_first", [True, False])
async def test_the_token_in_http_basic_form_is_redacted(
    serve_app: Serve, user: str, token_first: bool
) -> None:
    pair = f"{TOKEN}:{user}" if token_first else f"{user}:{TOKEN}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode()
    body = json.dumps({"error": f"bad credentials {basic}"})
    url = await serve_app(
        app_answering(401, body, **{"Content-Type": "application/json", "X-Seen": basic})
    )
    async with UphanceClient(token=TOKEN, base_url=url, retry=FAST) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(5)
    texts = " ".join(texts_of(caught.value))
    assert "<redacted>" in caught.value.headers["X-Seen"]
    assert_no_fragment([texts], TOKEN)
    for piece in encoded_fragments(TOKEN):
        assert piece not in texts, piece


def encoded_fragments(secret: str) -> set[str]:
    """Every run of base64 characters that encodes eight bytes of ``secret`` (11 characters),
    at each of the three alignments the secret can have inside an encoded pair."""
    found = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        pure = encoded[-(-8 * offset // 6) : 8 * (offset + len(secret)) // 6]
        found |= {pure[n : n + 11] for n in range(len(pure) - 10)}
    return found


def test_a_short_secret_is_redacted_only_as_a_whole_word() -> None:
    text = "The access token e is not valid; see e-mail"
    shown = clip(text, ["e"])
    assert shown.startswith("The access token <redacted> is not valid")
    assert "see <redacted>-mail" in shown or "see e-mail" in shown
    assert redact("nothing here", ["e"]) == "nothing here"


async def test_a_one_character_token_keeps_messages_readable(serve_app: Serve) -> None:
    body = json.dumps({"error": "The access token is not valid"})
    url = await serve_app(app_answering(401, body, **{"Content-Type": "application/json"}))
    async with UphanceClient(token="e", base_url=url, retry=FAST) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.customers.get(5)
    assert "The access token is not valid" in str(caught.value)


def test_clip_redacts_before_it_cuts() -> None:
    text = "x" * 95 + TOKEN
    for limit in range(90, 130):
        assert_no_fragment([clip(text, [TOKEN], limit)], TOKEN)
    assert clip("a" * 50 + TOKEN[:20], [TOKEN]).endswith("<redacted>")
    headers = redact_headers({f"X-{TOKEN}": TOKEN}, [TOKEN])
    assert list(headers.items()) == [("X-<redacted>", "<redacted>")]


def every_public_error() -> list[UphanceError]:
    fields: dict[str, Any] = {
        "status": 429,
        "method": "GET",
        "url_path": "/customers",
        "body": "slow down",
        "headers": {"Retry-After": "3", "X-Request-Id": "r-1"},
        "request_id": "r-1",
    }
    made: list[UphanceError] = []
    for name in uphance_async.__all__:
        kind = getattr(uphance_async, name)
        if not (isinstance(kind, type) and issubclass(kind, UphanceError)):
            continue
        if issubclass(kind, uphance_async.RateLimitError):
            made.append(kind("HTTP 429", retry_after=3.0, **fields))
        elif issubclass(kind, APIStatusError):
            made.append(kind("HTTP 4xx", **fields))
        elif issubclass(kind, uphance_async.PaginationError):
            made.append(kind("pages", page=7, method="GET", url_path="/customers", json_path="$"))
        elif issubclass(kind, uphance_async.ResponseValidationError):
            made.append(kind("shape", json_path="$.customers[3].id", method="GET", url_path="/c"))
        elif issubclass(kind, uphance_async.RecordEncodingError):
            made.append(kind("cannot write", record_id=12, json_path="$.notes"))
        elif issubclass(kind, uphance_async.APIConnectionError):
            made.append(kind("refused", method="GET", url_path="/customers"))
        else:
            made.append(kind("plain"))
    return made


def public_fields(error: BaseException) -> dict[str, Any]:
    found = {
        name: getattr(error, name)
        for name in (
            "status",
            "method",
            "url_path",
            "json_path",
            "page",
            "retry_after",
            "body",
            "request_id",
            "record_id",
            "checkpoint",
        )
        if hasattr(error, name)
    }
    if isinstance(error, APIStatusError):
        found["headers"] = dict(error.headers)
    return found


def test_every_public_error_round_trips_through_pickle() -> None:
    errors = every_public_error()
    assert len(errors) >= 20
    for error in errors:
        error.checkpoint = Checkpoint(next_page=4, params={"filter": "x"}, items_yielded=300)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.args == error.args
        assert public_fields(copy) == public_fields(error)
        if isinstance(copy, APIStatusError):
            assert copy.headers["retry-after"] == "3"  # still case-insensitive


def test_every_error_is_an_uphance_error_exported_from_the_package() -> None:
    from uphance_async import errors

    for name in errors.__all__:
        assert getattr(uphance_async, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), UphanceError)
