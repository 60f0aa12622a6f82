"""One request: authorization, the limiter, retries, and the typed errors and decoding of
:mod:`_protocol` applied to what came back.

Every retry of the library happens here, an unreadable body's included: a caller passes the
pure function that reads the body, and what it refuses is retried like a failed attempt.
Nothing here knows about customers or pages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any

import aiohttp
import anyio
from multidict import CIMultiDictProxy
from yarl import URL

from ._auth import Auth
from ._events import Observer, RequestEvent, call_hook
from ._json import dumps
from ._protocol import Decode, NotJSON, decode_json, status_error
from ._ratelimit import RateLimiter, Shed, call_began, loop_time, sheds
from ._redact import clip
from ._retry import IDEMPOTENT_METHODS, RetryPolicy
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
)

__all__ = ["Transport", "UseAuth"]

logger = logging.getLogger("uphance_async")


class UseAuth(Enum):
    """Take the ``Authorization`` header from the client's auth (the default)."""

    CLIENT = "client"


class _Retryable(Exception):
    """An attempt failed in a way the policy may retry; ``error`` is what to raise if not."""

    def __init__(
        self,
        error: Exception,
        *,
        sent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        cause: BaseException | None = None,
    ) -> None:
        self.error = error
        self.sent = sent
        self.status = status
        self.retry_after = retry_after
        self.cause = cause


@contextmanager
def _one_call() -> Iterator[None]:
    """Mark the call now made (unless it is within another, as a token renewal is), so that
    its retries keep the place its first attempt had in the limiter's queue."""
    began = call_began.set(loop_time()) if call_began.get() is None else None
    try:
        yield
    finally:
        if began is not None:
            call_began.reset(began)


class Transport:
    """Sends requests for one client. ``session`` is called for the live aiohttp session.

    ``on_request`` is the application's hook, told of every attempt (see :class:`RequestEvent`).
    """

    def __init__(
        self,
        *,
        base_url: URL,
        session: Callable[[], aiohttp.ClientSession],
        auth: Auth,
        limiter: RateLimiter,
        retry: RetryPolicy,
        timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str],
        max_response_bytes: int,
        on_request: Observer | None = None,
        deadline: float | None = None,
    ) -> None:
        self._base = str(base_url).rstrip("/")
        self.deadline = deadline
        self._session = session
        self._auth = auth
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self._headers = dict(headers)
        self.max_response_bytes = max_response_bytes
        self._on_request = on_request

    def derive(
        self,
        *,
        session: Callable[[], aiohttp.ClientSession],
        retry: RetryPolicy,
        timeout: aiohttp.ClientTimeout,
        max_response_bytes: int,
        deadline: float | None,
    ) -> Transport:
        """A transport with the same auth, limiter, headers and hook, and these settings."""
        return Transport(
            base_url=URL(self._base),
            session=session,
            auth=self._auth,
            limiter=self.limiter,
            retry=retry,
            timeout=timeout,
            headers=self._headers,
            max_response_bytes=max_response_bytes,
            on_request=self._on_request,
            deadline=deadline,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        observer: Observer | None = None,
        decode: Decode = decode_json,
        authorization: str | UseAuth | None = UseAuth.CLIENT,
    ) -> Any:
        """Send one request, with retries; what ``decode`` makes of the successful answer's body
        (the decoded JSON by default).

        ``authorization`` overrides the client's auth: a header value, or ``None`` for none;
        a 401 is then not answered by renewing the client's token. ``observer`` is told of each
        attempt, like the client's ``on_request`` hook.

        With a ``deadline`` the whole call (the limiter's queue, every attempt, backoff,
        Retry-After pauses, a token renewal) ends within it: a call the budget cannot serve in
        time raises :class:`RateLimitError` at once, a retry that would end past it is not
        started, and the deadline passing meanwhile is an :class:`APITimeoutError`.
        """
        with _one_call():
            if self.deadline is None:
                return await self._request(
                    method, path, params, json, observer, decode, authorization
                )
            expires = loop_time() + self.deadline
            try:
                with anyio.fail_after(self.deadline):
                    return await self._request(
                        method, path, params, json, observer, decode, authorization, expires
                    )
            except TimeoutError:
                raise APITimeoutError(
                    f"{method} {path}: the deadline of {self.deadline:g} s passed",
                    method=method,
                    url_path=path,
                ) from None

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        observer: Observer | None,
        decode: Decode,
        authorization: str | UseAuth | None,
        expires: float | None = None,
    ) -> Any:
        url = URL(self._base + path, encoded=True)
        data = dumps(json) if json is not None else None
        attempt = 0  # every HTTP attempt, for the events
        tries = 0  # those that count against the retry policy (a token renewal does not)
        renewed = False
        while True:
            attempt += 1
            tries += 1
            header = (
                await self._auth.authorization()
                if isinstance(authorization, UseAuth)
                else authorization
            )
            started = time.perf_counter()
            try:
                status, value = await self._attempt(
                    method, url, path, params, data, header, expires
                )
                decoded = self._decoded(decode, value, method, path, status)
            except AuthenticationError as error:
                self._tell(observer, method, path, started, attempt, error.status, error)
                if (
                    renewed
                    or header is None
                    or not isinstance(authorization, UseAuth)
                    or not await self._auth.renew(header)
                ):
                    raise
                renewed = True
                tries -= 1
                continue
            except APIStatusError as error:
                self._tell(observer, method, path, started, attempt, error.status, error)
                raise
            except Shed as shed:
                # Shed before anything was sent: no attempt to tell of, no budget spent.
                raise RateLimitError(
                    f"{method} {path}: not sent, the rate budget cannot serve it within the "
                    f"deadline (about {shed.wait:.2f} s from now)",
                    retry_after=shed.wait,
                    status=429,
                    method=method,
                    url_path=path,
                ) from None
            except _Retryable as failure:
                self._tell(observer, method, path, started, attempt, failure.status, failure.error)
                await self._before_retry(method, path, tries, failure, expires)
                continue
            except ClientClosedError:
                raise
            except Exception as error:
                self._tell(observer, method, path, started, attempt, None, error)
                raise
            self._tell(observer, method, path, started, attempt, status, None)
            return decoded

    def _decoded(self, decode: Decode, body: bytes, method: str, path: str, status: int) -> Any:
        try:
            return decode(body)
        except ResponseValidationError as error:
            secrets = self._auth.secrets()
            if isinstance(error, NotJSON):
                error = ResponseValidationError(error.described(secrets))
            error.method, error.url_path = method, path
            error.args = (clip(f"{method} {path} answered {status}: {error}", secrets),)
            raise _Retryable(error, sent=True, status=status) from None

    async def _before_retry(
        self, method: str, path: str, tries: int, failure: _Retryable, expires: float | None
    ) -> None:
        """Raise ``failure``'s error when it may not be retried (or the wait before the retry
        would end past the deadline); otherwise wait for the retry."""
        retriable = method in IDEMPOTENT_METHODS or not failure.sent
        if isinstance(failure.error, RateLimitError):
            retriable = self.retry.should_retry_status(method, 429)
        wait = self.retry.delay(tries, failure.retry_after)
        late = expires is not None and not self._retry_fits(wait, expires)
        if not retriable or tries >= self.retry.max_attempts or late:
            # The cause (a DNS or TLS failure, say) stays visible in tracebacks.
            raise failure.error from failure.cause
        logger.warning(
            "%s %s failed (%s); retry %d of %d in %.2f s",
            method,
            path,
            failure.error,
            tries,
            self.retry.max_attempts - 1,
            wait,
        )
        await anyio.sleep(wait)

    def _retry_fits(self, wait: float, expires: float) -> bool:
        """Whether a retry started in ``wait`` seconds could end before ``expires``: the
        limiter is asked now, so that a retry it would shed is not waited for first."""
        if anyio.current_time() + wait >= expires:
            return False
        return sheds(self.limiter, expires, wait) is None

    def _tell(
        self,
        observer: Observer | None,
        method: str,
        path: str,
        started: float,
        attempt: int,
        status: int | None,
        error: BaseException | None,
    ) -> None:
        event = RequestEvent(
            method=method,
            url_path=path,
            status=status,
            error=error,
            elapsed=time.perf_counter() - started,
            attempt=attempt,
            throttled=status == 429,
        )
        if observer is not None:
            observer(event)
        call_hook(self._on_request, event)

    async def _attempt(
        self,
        method: str,
        url: URL,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        authorization: str | None,
        expires: float | None = None,
    ) -> tuple[int, bytes]:
        headers = dict(self._headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        if data is not None:
            headers["Content-Type"] = "application/json"
        sent = False
        # A deadline is passed only when there is one: limiters written before deadlines
        # existed take no argument.
        slot = self.limiter.slot() if expires is None else self.limiter.slot(expires)
        async with slot as sent_at:
            try:
                async with self._session().request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                ) as response:
                    sent = True
                    body = await self._read(response, method, path)
                    status = response.status
                    response_headers: CIMultiDictProxy[str] = response.headers
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise _Retryable(
                    APITimeoutError(f"{method} {path} timed out", method=method, url_path=path),
                    sent=sent or _sent(exc),
                    cause=exc,
                ) from None
            except aiohttp.ClientConnectorError as exc:
                text = self._redact(f"{method} {path}: cannot connect ({exc.os_error})")
                error = APIConnectionError(text, method=method, url_path=path)
                raise _Retryable(error, sent=False, cause=exc) from None
            except aiohttp.ClientError as exc:
                text = self._redact(f"{method} {path}: {type(exc).__name__}: {exc}")
                # A ClientResponseError holds the request's headers: never chain it.
                cause = None if isinstance(exc, aiohttp.ClientResponseError) else exc
                error = APIConnectionError(text, method=method, url_path=path)
                raise _Retryable(error, sent=True, cause=cause) from None
        logger.debug("%s %s -> %d (%d bytes)", method, path, status, len(body))
        if status != 429:
            await self.limiter.accepted(sent_at)
        if status < 300:
            return status, body
        failed = status_error(status, method, path, body, response_headers, self._auth.secrets())
        if isinstance(failed, RateLimitError):
            retry_after = (
                None
                if failed.retry_after is None
                else min(failed.retry_after, self.retry.max_retry_after)
            )
            await self.limiter.throttled(sent_at, retry_after)
            raise _Retryable(failed, sent=False, status=status, retry_after=retry_after)
        if self.retry.should_retry_status(method, status):
            raise _Retryable(failed, sent=True, status=status)
        raise failed

    async def _read(self, response: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_response_bytes:
            raise self._too_large(method, path)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise self._too_large(method, path)
            chunks.append(chunk)
        return b"".join(chunks)

    def _redact(self, text: str) -> str:
        return clip(text, self._auth.secrets())

    def _too_large(self, method: str, path: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{method} {path}: the answer exceeds max_response_bytes={self.max_response_bytes}",
            method=method,
            url_path=path,
        )


def _sent(exc: BaseException) -> bool:
    # aiohttp's connect timeouts happen before a byte of the request left.
    return not isinstance(exc, aiohttp.ConnectionTimeoutError)
