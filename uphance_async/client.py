"""UphanceClient: the session, the limiter and the retry policy that every endpoint shares."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Unpack, overload
from urllib.parse import quote

import aiohttp
import attrs
from yarl import URL

from ._auth import Auth, Credentials, PasswordAuth, StaticToken, TokenStore
from ._events import Observer
from ._ratelimit import Limiter, RateLimiter, checked_rate
from ._retry import RetryPolicy
from ._transport import Transport
from ._validate import positive_int
from ._version import __version__
from .errors import ClientClosedError
from .models import Organisation
from .pagination import Checkpoint, PageStream, StreamRegistry
from .resources._lists import ListEndpoint, ListResource, Record, StreamOptions
from .resources.customers import CustomersAPI
from .resources.organisations import OrganisationsAPI

T = TypeVar("T")

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_CONCURRENCY", "UphanceClient"]

DEFAULT_BASE_URL = "https://api.uphance.com"
DEFAULT_CONCURRENCY = 8
"""Pages a stream fetches at once unless told otherwise."""
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_PATH = re.compile(r"/[^?#\s\x00-\x1f\x7f]*")
USER_AGENT = f"uphance-async/{__version__} aiohttp/{aiohttp.__version__}"


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _base_url(value: str | URL, allow_insecure: bool) -> URL:
    url = URL(value)
    if url.scheme not in ("https", "http") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, not {str(value)!r}")
    if url.query_string or url.fragment or url.user or url.password:
        raise ValueError("base_url must not carry a query, a fragment or credentials")
    if url.scheme == "http" and not allow_insecure and not _is_loopback(url.host):
        raise ValueError(
            f"base_url must use https:// (plain http only for loopback hosts, or with "
            f"allow_insecure=True), not {str(value)!r}"
        )
    return url


def _checked_seconds(name: str, seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
    if seconds == float("inf"):
        raise ValueError(f"{name} must be finite")
    return float(seconds)


def _checked_max_bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ValueError(f"max_response_bytes must be an int >= 1024, not {value!r}")
    return value


def _user_path(path: object) -> str:
    """A path given to :meth:`UphanceClient.request`: absolute, no query, no ``..``."""
    if not isinstance(path, str) or not _PATH.fullmatch(path) or path.startswith("//"):
        raise ValueError(
            f"path must start with / and have no query, fragment, space or control "
            f"character (pass params= for the query), not {path!r}"
        )
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError(f"path must not contain . or .. segments, not {path!r}")
    return quote(path, safe="/-._~!$&'()*+,;=:@%")


def _attrs_class(value: object) -> bool:
    return isinstance(value, type) and attrs.has(value)


def _user_list(path: str, key: object, model: type[T] | None = None) -> ListEndpoint[T]:
    """The list a user names by ``path`` and ``key`` (for ``paginate`` and ``partitions``),
    its records as ``model`` if one is given."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be the name of the list in the answer, not {key!r}")
    if model is not None and not _attrs_class(model):
        raise TypeError(f"model must be an attrs class, not {model!r}")
    return ListEndpoint(_user_path(path), key, model, exact_key=True)


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query parameters as strings (``True`` is ``"true"``); ``None`` values are left out."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, not {type(params).__name__}")
    query = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str | int | float):
            raise TypeError(f"params[{name!r}] must be a str, int, float or bool, not {value!r}")
        query[str(name)] = str(value)
    return query


def _is_async(hook: object) -> bool:
    call = type(hook).__dict__.get("__call__") if not inspect.isfunction(hook) else None
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call)


@attrs.define(eq=False)
class _Shared:
    """What a client and every view of it made by ``with_options`` share."""

    timeout: aiohttp.ClientTimeout
    max_in_flight: int
    given_session: aiohttp.ClientSession | None
    session: aiohttp.ClientSession | None = None
    closed: bool = False
    streams: StreamRegistry = attrs.Factory(StreamRegistry)
    views: weakref.WeakSet[StreamRegistry] = attrs.Factory(weakref.WeakSet)
    loop: asyncio.AbstractEventLoop | None = None

    def live_session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise ClientClosedError("this UphanceClient is closed")
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        elif loop is not self.loop:
            # Its session, connections and locks belong to the first loop, which may be closed.
            raise ClientClosedError(
                "this UphanceClient belongs to the event loop it was first used in; make one "
                "client per event loop (per asyncio.run())"
            )
        if self.session is None:
            # Created here, inside the running loop, on the first request or in __aenter__.
            self.session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=self.max_in_flight),
            )
        if self.session.closed:
            raise ClientClosedError("the aiohttp session given to UphanceClient is closed")
        return self.session


class UphanceClient:
    """An async client for the Uphance API. Use it as ``async with UphanceClient(token=...)``.

    Authenticate with ``token=``, or sign in with ``email=`` and ``password=`` (or
    ``credentials=``), optionally choosing ``organisation_id=`` and keeping tokens across
    restarts in a ``token_store=``; the token is then refreshed as needed.

    One client holds one aiohttp session, one limiter (at most ``max_in_flight`` requests at once;
    ``rate_limit`` requests per second when given, else a rate that adapts to the server's 429s;
    or the ``limiter=`` given, such as a ``RedisLimiter`` shared by many processes) and one
    :class:`RetryPolicy`; share it across the whole application rather than making one per
    request. ``concurrency`` is how many pages a stream fetches at once by default.

    Pass ``session=`` to use your own ``aiohttp.ClientSession``; the client then never closes
    it. ``timeout`` bounds one HTTP attempt, ``connect_timeout`` its connection, in seconds.
    ``deadline`` bounds a whole call, every wait included (the rate limiter's queue, retries,
    their backoff, ``Retry-After`` pauses, a token renewal; in a stream, each page): a call the
    rate budget cannot serve in time fails at once with :class:`RateLimitError` (its
    ``retry_after`` estimates when it could be served) without spending any of the budget, and
    the deadline passing meanwhile raises :class:`APITimeoutError`.
    Answers larger than ``max_response_bytes`` raise :class:`ResponseTooLargeError`. Redirects
    are not followed: a 3xx answer raises :class:`APIStatusError`. ``on_request`` is called with
    a :class:`RequestEvent` after every HTTP attempt (token requests included), for metrics.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        organisation_id: int | None = None,
        credentials: Credentials | None = None,
        token_store: TokenStore | None = None,
        base_url: str | URL = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_in_flight: int = 16,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_response_bytes: int = 8 * 1024 * 1024,
        user_agent: str | None = None,
        allow_insecure: bool = False,
        on_request: Observer | None = None,
        limiter: RateLimiter | None = None,
        deadline: float | None = None,
    ) -> None:
        if credentials is None and (email is not None or password is not None):
            if email is None or password is None:
                raise ValueError("email and password go together")
            credentials = Credentials(email, password, organisation_id)
        elif organisation_id is not None:
            raise ValueError(
                "organisation_id goes with email and password (with a token, call set_organisation)"
            )
        if (token is None) == (credentials is None):
            raise ValueError("give either token=, or email= and password= (or credentials=)")
        positive_int("concurrency", concurrency)
        positive_int("max_in_flight", max_in_flight)
        if limiter is None:
            limiter = Limiter(max_in_flight, checked_rate(rate_limit, "rate_limit"))
        elif not isinstance(limiter, RateLimiter):
            raise TypeError(
                "limiter must have max_in_flight, rate, slot(), throttled() and accepted() "
                f"(see uphance_async.RateLimiter), not {type(limiter).__name__}"
            )
        elif rate_limit is not None:
            raise ValueError("rate_limit configures the default limiter: not with limiter=")
        if on_request is not None and not callable(on_request):
            raise TypeError("on_request must be callable")
        if _is_async(on_request):
            raise TypeError(
                "on_request is called synchronously after every attempt, so an async def hook "
                "would never run: pass a plain function (it may schedule async work itself)"
            )
        timeouts = aiohttp.ClientTimeout(
            total=_checked_seconds("timeout", timeout),
            connect=_checked_seconds("connect_timeout", connect_timeout),
        )
        url = _base_url(base_url, allow_insecure)
        retry = retry if retry is not None else RetryPolicy()
        auth: Auth
        if credentials is not None:
            auth = PasswordAuth(
                credentials,
                request_token=self._request_token,
                select_organisation=self._select_for_token,
                store=token_store,
                backoff=retry.ceiling,
            )
        else:
            assert token is not None
            auth = StaticToken(token)
        shared = _Shared(
            timeout=timeouts,
            max_in_flight=limiter.max_in_flight,
            given_session=session,
            session=session,
        )

        def transport(live_session: Callable[[], aiohttp.ClientSession]) -> Transport:
            return Transport(
                base_url=url,
                session=live_session,
                auth=auth,
                limiter=limiter,
                retry=retry,
                timeout=timeouts,
                headers={"Accept": "application/json", "User-Agent": user_agent or USER_AGENT},
                max_response_bytes=_checked_max_bytes(max_response_bytes),
                on_request=on_request,
                deadline=None if deadline is None else _checked_seconds("deadline", deadline),
            )

        self._attach(
            base_url=url,
            auth=auth,
            shared=shared,
            transport=transport,
            concurrency=concurrency,
            registry=shared.streams,
        )

    def _attach(
        self,
        *,
        base_url: URL,
        auth: Auth,
        shared: _Shared,
        transport: Callable[[Callable[[], aiohttp.ClientSession]], Transport],
        concurrency: int,
        registry: StreamRegistry,
    ) -> None:
        """Every attribute of a client or a view, in one place: ``__init__`` and
        :meth:`with_options` both come here, so a view cannot miss one a client has.
        ``transport`` makes the transport from this object's session getter."""
        self.base_url = base_url
        self._auth = auth
        self._shared = shared
        self._closed = False
        self.concurrency = concurrency
        self._registry = registry
        self._transport = transport(self._live_session)
        self.customers = CustomersAPI(
            self._transport, concurrency=lambda: self.concurrency, registry=registry
        )
        self._organisations = OrganisationsAPI(self._transport)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_response_bytes: int | None = None,
        concurrency: int | None = None,
        deadline: float | None = None,
    ) -> UphanceClient:
        """A view of this client with some settings changed for the calls made through it
        (``deadline``: see :class:`UphanceClient`).

        The view shares the session, the limiter, the sign-in and the ``on_request`` hook.
        Closing the client closes its views; closing a view stops only the view's streams and
        leaves the client open.
        """
        current = self._transport
        timeouts = aiohttp.ClientTimeout(
            total=_checked_seconds("timeout", timeout)
            if timeout is not None
            else current.timeout.total,
            connect=_checked_seconds("connect_timeout", connect_timeout)
            if connect_timeout is not None
            else current.timeout.connect,
        )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        limit = current.max_response_bytes
        if max_response_bytes is not None:
            limit = _checked_max_bytes(max_response_bytes)
        wait = current.deadline if deadline is None else _checked_seconds("deadline", deadline)
        width = self.concurrency
        if concurrency is not None:
            width = positive_int("concurrency", concurrency)

        def transport(live_session: Callable[[], aiohttp.ClientSession]) -> Transport:
            return current.derive(
                session=live_session,
                retry=retry if retry is not None else current.retry,
                timeout=timeouts,
                max_response_bytes=limit,
                deadline=wait,
            )

        registry = StreamRegistry()
        self._shared.views.add(registry)
        # A view shares everything but its transport and streams: no __init__ of its own.
        view = UphanceClient.__new__(UphanceClient)
        view._attach(
            base_url=self.base_url,
            auth=self._auth,
            shared=self._shared,
            transport=transport,
            concurrency=width,
            registry=registry,
        )
        return view

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<UphanceClient {str(self.base_url)!r} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called (on this client, or on the one it is a view of)."""
        return self._closed or self._shared.closed

    @property
    def rate_limit(self) -> float | None:
        """The limiter's current rate cap in requests per second (``None``: no cap yet)."""
        return self._transport.limiter.rate

    def _live_session(self) -> aiohttp.ClientSession:
        if self._closed:
            what = "UphanceClient" if self._registry is self._shared.streams else "view"
            raise ClientClosedError(f"this {what} is closed")
        return self._shared.live_session()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Any endpoint, e.g. ``await client.request("GET", "/invoices/12")``: the decoded JSON
        answer (``None`` for an empty one).

        It goes through the same sign-in, limiter, retries (a POST only when the server
        provably did not act on it), size cap and error mapping as every other call. ``path``
        starts with ``/``; the query goes in ``params``.
        """
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(sorted(_METHODS))}, not {method!r}")
        return await self._transport.request(
            method.upper(), _user_path(path), params=_query(params) or None, json=json
        )

    @overload
    def paginate(
        self,
        path: str,
        *,
        key: str,
        model: None = None,
        params: Mapping[str, Any] | None = None,
        **options: Unpack[StreamOptions],
    ) -> PageStream[Record]: ...

    @overload
    def paginate(
        self,
        path: str,
        *,
        key: str,
        model: type[T],
        params: Mapping[str, Any] | None = None,
        **options: Unpack[StreamOptions],
    ) -> PageStream[T]: ...

    def paginate(
        self,
        path: str,
        *,
        key: str,
        model: type[T] | None = None,
        params: Mapping[str, Any] | None = None,
        **options: Unpack[StreamOptions],
    ) -> PageStream[Any]:
        """Every record of any paginated list, e.g. ``client.paginate("/invoices",
        key="invoices", params={"since_id": 1000})``, as the JSON objects it came as, or as
        ``model`` (an attrs class, e.g. ``Invoice``: read as customers are, straight from the
        page's bytes where they fit, leniently otherwise).

        The same engine and options as ``customers.stream()`` (``concurrency``, ``start_page``,
        ``stop_page``, ``ordered``, ``resume``, ``verify``): pages fetched concurrently and
        handed out in order, bounded memory, records deduplicated on ``"id"``, ``.stats``,
        ``.checkpoint``, and the same exactness when the list changes.
        """
        records = ListResource(
            _user_list(path, key, model),
            self._transport,
            concurrency=lambda: self.concurrency,
            registry=self._registry,
        )
        given = params is not None
        if model is None:
            return records.raw(_query(params), filters_given=given, **options)
        return records.typed(_query(params), filters_given=given, **options)

    async def partitions(
        self,
        path: str,
        count: int,
        *,
        key: str,
        params: Mapping[str, Any] | None = None,
        overlap: int = 0,
    ) -> tuple[Checkpoint, ...]:
        """Split the crawl of any paginated list, as ``customers.partitions`` does; run each
        checkpoint as ``paginate(path, key=key, resume=checkpoint)``."""
        return await _user_list(path, key).partitions(
            self._transport, _query(params), count, overlap=overlap
        )

    async def organisations(self) -> tuple[Organisation, ...]:
        """``GET /organisations``: the organisations the signed-in user belongs to."""
        return await self._organisations.list()

    async def set_organisation(self, organisation_id: int) -> None:
        """Make later requests act on ``organisation_id``.

        When signed in with e-mail and password it is selected again after every new token.
        """
        await self._organisations.select(organisation_id)
        if isinstance(self._auth, PasswordAuth):
            self._auth.organisation_id = organisation_id

    async def _select_for_token(self, authorization: str, organisation_id: int) -> None:
        await self._organisations.select(organisation_id, authorization=authorization)

    async def _request_token(self, body: dict[str, Any]) -> Any:
        """``POST /oauth/token`` without authorization."""
        return await self._transport.request("POST", "/oauth/token", json=body, authorization=None)

    async def __aenter__(self) -> UphanceClient:
        self._live_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every open stream and close the session (unless it was given). Idempotent.

        On a view made by :meth:`with_options`, stops the view's streams only.
        """
        if self._closed or self._shared.closed:
            return
        self._closed = True
        reason = ClientClosedError("the UphanceClient of this stream was closed")
        if self._registry is not self._shared.streams:
            await self._registry.close_all(reason)
            return
        self._shared.closed = True
        for registry in [self._shared.streams, *self._shared.views]:
            await registry.close_all(reason)
        session, self._shared.session = self._shared.session, None
        if session is not None and session is not self._shared.given_session:
            await session.close()
