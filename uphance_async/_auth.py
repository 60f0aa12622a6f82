"""Where the ``Authorization`` header comes from."""

from __future__ import annotations

from typing import Protocol


class Auth(Protocol):
    """Gives the ``Authorization`` header value, and may renew it after a 401."""

    async def authorization(self) -> str:
        """The header value for the next request."""
        ...

    async def renew(self, rejected: str) -> bool:
        """The server refused ``rejected``; True when a new header is ready to retry with."""
        ...


class StaticToken:
    """A token given by the caller; it cannot be renewed."""

    __slots__ = ("_header",)

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty str")
        if any(ch in token for ch in "\r\n"):
            raise ValueError("token must not contain line breaks")
        self._header = f"Bearer {token.strip()}"

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    async def authorization(self) -> str:
        return self._header

    async def renew(self, rejected: str) -> bool:
        return False
