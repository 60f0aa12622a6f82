"""Where the ``Authorization`` header comes from: a static token, or a signed-in user.

:class:`PasswordAuth` signs in with the password grant of ``POST /oauth/token``, refreshes the
token with the refresh-token grant shortly before it expires (or after a 401), falls back to
a new password sign-in when the refresh is refused, and selects the organisation again after
every new token. Concurrent requests that all need a new token cause exactly one token request.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import attrs

from ._files import write_atomically
from ._validate import email_field, positive_int
from .errors import APIStatusError, AuthenticationError, ResponseValidationError, ServerError

__all__ = ["Auth", "Credentials", "JSONFileTokenStore", "PasswordAuth", "StaticToken", "Token"]

_MARGIN_SECONDS = 60.0
_MARGIN_SHARE = 0.1


class Auth(Protocol):
    """Gives the ``Authorization`` header value, and may renew it after a 401."""

    async def authorization(self) -> str:
        """The header value for the next request."""
        ...

    async def renew(self, rejected: str) -> bool:
        """The server refused ``rejected``; True when a new header is ready to retry with."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Every secret this auth has held, to be redacted from whatever the client reports."""
        ...


def _check_secret(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty str")
    if any(ch in value for ch in "\r\n"):
        raise ValueError(f"{name} must not contain line breaks")
    return value


def _check_token(value: object) -> str:
    """A token goes into a header: control characters (NUL, DEL, CR, LF...) would break every
    request deep inside aiohttp, so they are refused here, at once."""
    token = _check_secret("token", value).strip()
    if not token.isprintable() or not token.isascii():
        raise ValueError("token must be printable ASCII, without control characters")
    return token


class StaticToken:
    """A token given by the caller; it cannot be renewed."""

    __slots__ = ("_header", "_token")

    def __init__(self, token: str) -> None:
        self._token = _check_token(token)
        self._header = f"Bearer {self._token}"

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    async def authorization(self) -> str:
        return self._header

    async def renew(self, rejected: str) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


def _password(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_secret("password", value)


def _organisation(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        positive_int("organisation_id", value)


@attrs.frozen(slots=True, repr=False)
class Credentials:
    """An Uphance user's sign-in: e-mail, password and optionally the organisation to act on."""

    email: str = attrs.field(validator=email_field)
    password: str = attrs.field(validator=_password)
    organisation_id: int | None = attrs.field(default=None, validator=_organisation)

    def __repr__(self) -> str:
        return (
            f"Credentials(email={self.email!r}, password=<redacted>, "
            f"organisation_id={self.organisation_id!r})"
        )


@attrs.frozen(slots=True, repr=False)
class Token:
    """An access token with what is needed to renew it. ``expires_at`` is in unix seconds."""

    access_token: str
    refresh_token: str | None
    created_at: float
    expires_in: float
    email: str | None = None

    @property
    def expires_at(self) -> float:
        """When the token stops working (``created_at + expires_in``)."""
        return self.created_at + self.expires_in

    def due(self, now: float) -> bool:
        """Whether to renew now: less than min(60 s, 10% of the lifetime) remains."""
        margin = min(_MARGIN_SECONDS, _MARGIN_SHARE * self.expires_in)
        return now >= self.expires_at - margin

    def __repr__(self) -> str:
        return f"Token(<redacted>, expires_at={self.expires_at!r}, email={self.email!r})"


def token_from_answer(data: Any, email: str, now: float) -> Token:
    """A :class:`Token` from the JSON answer of ``POST /oauth/token``."""
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        raise ResponseValidationError(
            "the token answer has no access_token", json_path="$.access_token"
        )
    try:
        expires_in = float(data.get("expires_in") or 7 * 86400)
        created_at = float(data.get("created_at") or now)
    except (TypeError, ValueError):
        raise ResponseValidationError(
            "the token answer has an unreadable expires_in or created_at", json_path="$"
        ) from None
    refresh = data.get("refresh_token")
    try:
        _check_token(data["access_token"])
    except ValueError:
        raise ResponseValidationError(
            "the token answer's access_token is empty or has control characters",
            json_path="$.access_token",
        ) from None
    return Token(
        access_token=data["access_token"],
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        created_at=created_at,
        expires_in=expires_in,
        email=email,
    )


class TokenStore(Protocol):
    """Keeps a token across restarts, so a worker need not sign in each time it starts."""

    async def load(self) -> Token | None:
        """The saved token, or ``None``."""
        ...

    async def save(self, token: Token) -> None:
        """Keep ``token`` for the next :meth:`load`."""
        ...


class JSONFileTokenStore:
    """A :class:`TokenStore` in a JSON file readable by its owner only (mode 0600); ``~`` expands.

    The file is replaced atomically, so a crash never leaves half a token behind; an unreadable
    file counts as empty.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"JSONFileTokenStore({str(self.path)!r})"

    async def load(self) -> Token | None:
        try:
            data = json.loads(await anyio.Path(self.path).read_text())
            return Token(
                access_token=str(data["access_token"]),
                refresh_token=data.get("refresh_token"),
                created_at=float(data["created_at"]),
                expires_in=float(data["expires_in"]),
                email=data.get("email"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def save(self, token: Token) -> None:
        data = json.dumps(attrs.asdict(token)).encode()
        await anyio.to_thread.run_sync(write_atomically, self.path, data)


RequestToken = Callable[[dict[str, Any]], Awaitable[Any]]
"""Posts a body to ``/oauth/token`` without authorization; the decoded answer. Failing answers
raise :class:`APIStatusError` (already redacted of every secret); refusals become
:class:`AuthenticationError` here."""
SelectOrganisation = Callable[[str, int], Awaitable[None]]
"""Selects organisation ``id`` for the token given as its ``Authorization`` header value."""


@attrs.define
class _Flight:
    """One token request in progress, and its outcome for everyone who waited on it."""

    done: anyio.Event = attrs.Factory(anyio.Event)
    token: Token | None = None
    error: Exception | None = None


class PasswordAuth:
    """Signs in with :class:`Credentials`, and keeps a fresh token for every request.

    Token requests fly one at a time, whatever their outcome: callers that need a new token
    while one is being obtained wait for it, and a failure is handed to every one of them. After
    ``n`` failures in a row the next token request waits ``backoff(n)`` seconds first.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        request_token: RequestToken,
        select_organisation: SelectOrganisation,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float],
    ) -> None:
        self._credentials = credentials
        self._request_token = request_token
        self._select = select_organisation
        self._store = store
        self._clock = clock
        self._backoff = backoff
        self._token: Token | None = None
        self._loaded = False
        self._flight: _Flight | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._secrets: dict[str, None] = {credentials.password: None}
        self.organisation_id = credentials.organisation_id
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"PasswordAuth({self._credentials!r})"

    @staticmethod
    def _header(token: Token) -> str:
        return f"Bearer {token.access_token}"

    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    async def authorization(self) -> str:
        token = self._token
        if token is None or token.due(self._clock()):
            token = await self._renewed(stale=token, refused=False)
        return self._header(token)

    async def renew(self, rejected: str) -> bool:
        token = self._token
        if token is not None and self._header(token) != rejected:
            return True  # another request renewed it meanwhile
        await self._renewed(stale=token, refused=True)
        return True

    async def _renewed(self, *, stale: Token | None, refused: bool) -> Token:
        """One token request for every caller that saw ``stale``: the first does the work,
        the others wait for its outcome, a failure included."""
        while True:
            token = self._token
            if token is not stale and token is not None and not token.due(self._clock()):
                return token
            flight = self._flight
            if flight is None:
                return await self._fly(stale=token, refused=refused)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.token is not None:
                return flight.token
            # The flight was cancelled before it ended: whoever comes first starts another.

    async def _fly(self, *, stale: Token | None, refused: bool) -> Token:
        flight = self._flight = _Flight()
        try:
            wait = self._retry_at - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
            flight.token = await self._obtain(stale, refused)
        except Exception as exc:
            flight.error = exc
            self._failures += 1
            self._retry_at = anyio.current_time() + self._backoff(self._failures)
            raise
        else:
            self._failures = 0
            return flight.token
        finally:
            self._flight = None
            flight.done.set()

    async def _obtain(self, token: Token | None, refused: bool) -> Token:
        if token is None and not self._loaded:
            self._loaded = True
            token = await self._from_store()
            if token is not None and not token.due(self._clock()) and not refused:
                await self._activate(token)
                return token
        token = await self._new_token(token)
        await self._activate(token)
        if self._store is not None:
            await self._store.save(token)
        return token

    async def _from_store(self) -> Token | None:
        if self._store is None:
            return None
        token = await self._store.load()
        if token is None or token.email != self._credentials.email:
            return None
        self._remember(token)
        return token

    def _remember(self, token: Token) -> None:
        self._secrets[token.access_token] = None
        if token.refresh_token:
            self._secrets[token.refresh_token] = None

    async def _activate(self, token: Token) -> None:
        # The server keeps the organisation per token: select it before anyone uses the token.
        if self.organisation_id is not None:
            await self._select(self._header(token), self.organisation_id)
        self._token = token

    async def _new_token(self, old: Token | None) -> Token:
        if old is not None and old.refresh_token is not None:
            try:
                return await self._grant(
                    {"grant_type": "refresh_token", "refresh_token": old.refresh_token}
                )
            except AuthenticationError:
                pass  # the refresh token is spent or revoked: sign in again
        return await self._grant(
            {
                "grant_type": "password",
                "email": self._credentials.email,
                "password": self._credentials.password,
            }
        )

    async def _grant(self, body: dict[str, Any]) -> Token:
        self.token_requests += 1
        try:
            answer = await self._request_token(body)
        except APIStatusError as error:
            if isinstance(error, ServerError) or error.status == 429:
                raise  # the server failed or is busy: no verdict on the credentials
            raise AuthenticationError(
                f"sign-in refused: {error.message}",
                status=error.status,
                method=error.method,
                url_path=error.url_path,
                body=error.body,
                headers=error.headers,
                request_id=error.request_id,
            ) from None
        token = token_from_answer(answer, self._credentials.email, self._clock())
        self._remember(token)
        return token
