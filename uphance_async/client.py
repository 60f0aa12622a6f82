"""UphanceClient: the session, the limiter and the retry policy that every endpoint shares."""

from __future__ import annotations

import ipaddress
import weakref
from typing import Any

import aiohttp
from yarl import URL

from ._auth import Auth, Credentials, PasswordAuth, StaticToken, TokenStore
from ._ratelimit import Limiter
from ._retry import RetryPolicy
from ._transport import Transport, error_message
from ._validate import positive_int
from ._version import __version__
from .errors import APIStatusError, AuthenticationError, ClientClosedError, ServerError
from .models import Organisation
from .pagination import PageStream
from .resources.customers import CustomersAPI
from .resources.organisations import OrganisationsAPI

__all__ = ["DEFAULT_BASE_URL", "UphanceClient"]

DEFAULT_BASE_URL = "https://api.uphance.com"
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


class UphanceClient:
    """An async client for the Uphance API. Use it as ``async with UphanceClient(token=...)``.

    Authenticate with ``token=``, or sign in with ``email=`` and ``password=`` (or
    ``credentials=``), optionally choosing ``organisation_id=`` and keeping tokens across
    restarts in a ``token_store=``; the token is then refreshed as needed.

    One client holds one aiohttp session, one limiter (at most ``max_in_flight`` requests at once;
    ``rate_limit`` requests per second when given, else a rate that adapts to the server's 429s)
    and one :class:`RetryPolicy`; share it across the whole application rather than making one
    per request. ``concurrency`` is how many pages a customer stream fetches at once by default.

    Pass ``session=`` to use your own ``aiohttp.ClientSession``; the client then never closes
    it. ``timeout`` bounds a whole request, ``connect_timeout`` the connection, in seconds.
    Answers larger than ``max_response_bytes`` raise :class:`ResponseTooLargeError`. Redirects
    are not followed: a 3xx answer raises :class:`APIStatusError`.
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
        concurrency: int = 8,
        max_in_flight: int = 16,
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_response_bytes: int = 8 * 1024 * 1024,
        user_agent: str | None = None,
        allow_insecure: bool = False,
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
        for name, seconds in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(seconds, int | float) or seconds <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
            raise ValueError(
                f"max_response_bytes must be an int >= 1024, not {max_response_bytes!r}"
            )
        self.base_url = _base_url(base_url, allow_insecure)
        retry = retry if retry is not None else RetryPolicy()
        self._auth: Auth
        if credentials is not None:
            self._auth = PasswordAuth(
                credentials,
                request_token=self._request_token,
                select_organisation=self._select_for_token,
                store=token_store,
                backoff=retry.ceiling,
            )
        else:
            assert token is not None
            self._auth = StaticToken(token)
        self.concurrency = concurrency
        self._given_session = session
        self._session: aiohttp.ClientSession | None = session
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._streams: weakref.WeakSet[PageStream[Any]] = weakref.WeakSet()
        self._transport = Transport(
            base_url=self.base_url,
            session=self._live_session,
            auth=self._auth,
            limiter=Limiter(max_in_flight, rate_limit),
            retry=retry,
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": user_agent or USER_AGENT},
            max_response_bytes=max_response_bytes,
        )
        self.customers = CustomersAPI(
            self._transport, concurrency=lambda: self.concurrency, on_stream=self._streams.add
        )
        self._organisations = OrganisationsAPI(self._transport)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<UphanceClient {str(self.base_url)!r} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def rate_limit(self) -> float | None:
        """The limiter's current rate cap in requests per second (``None``: no cap yet)."""
        return self._transport.limiter.rate

    def _live_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this UphanceClient is closed")
        if self._session is None:
            # Created here, inside the running loop, on the first request or in __aenter__.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._transport.limiter.max_in_flight),
            )
        if self._session.closed:
            raise ClientClosedError("the aiohttp session given to UphanceClient is closed")
        return self._session

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
        """``POST /oauth/token`` without authorization; refusals become AuthenticationError."""
        try:
            return await self._transport.request(
                "POST", "/oauth/token", json=body, authorization=None
            )
        except APIStatusError as error:
            if isinstance(error, ServerError) or error.status == 429:
                raise
            detail = error_message(error.body.encode())
            for secret in (body.get("password"), body.get("refresh_token")):
                if secret:
                    detail = detail.replace(secret, "<redacted>")
            raise AuthenticationError(
                f"sign-in refused (HTTP {error.status})" + (f": {detail}" if detail else ""),
                status=error.status,
                method="POST",
                path="/oauth/token",
                headers=error.headers,
                request_id=error.request_id,
            ) from None

    async def __aenter__(self) -> UphanceClient:
        self._live_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every open stream and close the session (unless it was given). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream._shutdown(ClientClosedError("the UphanceClient of this stream was closed"))
        session, self._session = self._session, None
        if session is not None and session is not self._given_session:
            await session.close()
