"""The HTTP protocol of the Uphance API as plain functions, without I/O: the typed error of a
failing status and its message (secrets redacted before anything is cut), path encoding, and
the readers of a successful answer's body. :mod:`_transport` does the I/O with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

from ._json import JSONError, loads
from ._redact import REDACTED, clip, redact_headers
from ._retry import parse_retry_after
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    UnprocessableEntityError,
)

__all__ = [
    "Decode",
    "NotJSON",
    "decode_json",
    "error_message",
    "flatten",
    "json_like",
    "keep_bytes",
    "path_of",
    "status_error",
]

_STATUS_ERRORS: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
_EXCERPT = 300
# Error bodies can be hostile: only this much of one is ever looked at, and nothing here
# backtracks, so reading any error answer takes a bounded, small time.
_PREFIX = 4096
_MAX_DEPTH = 32
# No "<" inside a tag: each attempt stops at the next "<", so stripping is linear. The mark
# left where a secret was is kept.
_TAG = re.compile(rf"<(?!{re.escape(REDACTED[1:])})[^<>]*>")
_SPACE = re.compile(r"\s+")


def path_of(*segments: str | int) -> str:
    """``/a/b/c`` from segments, each percent-encoded whole so none can add a path or a query."""
    return "".join("/" + quote(str(segment), safe="") for segment in segments)


def error_message(body: bytes, secrets: Iterable[str] = ()) -> str:
    """A short human message from an error body: JSON ``error``/``errors``/``message``, or text;
    ``secrets`` are redacted before anything is cut.

    Linear in the body's size, and bounded: JSON is decoded only when the body is small, and
    text is read from its first few KiB.
    """
    secrets = tuple(secrets)
    data = None
    if len(body) <= 64 * _PREFIX:
        try:
            data = loads(body)
        except JSONError:
            data = None
    if isinstance(data, dict):
        for key in ("error_description", "message", "error", "errors"):
            value = data.get(key)
            if value:
                return clip(flatten(value, _PREFIX), secrets, _EXCERPT)
    text = clip(body[:_PREFIX].decode("utf-8", "replace"), secrets)
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()[:_EXCERPT]


class _Separator(str):
    """Text that :func:`flatten` puts between parts (not a value from the body)."""

    __slots__ = ()


def flatten(value: Any, limit: int) -> str:
    """JSON ``value`` as one line of at most ``limit`` characters (``key: a, b; key: c``).

    Iterative, with a depth cap: an error body nested hundreds deep must not exhaust the stack.
    """
    parts: list[str] = []
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and size < limit:
        item, depth = stack.pop()
        if type(item) is _Separator:
            text: str = item
        elif isinstance(item, dict | list) and depth >= _MAX_DEPTH:
            text = "..."
        elif isinstance(item, dict):
            pending: list[tuple[Any, int]] = []
            for n, (key, inner) in enumerate(item.items()):
                pending += [(_Separator(f"{'; ' if n else ''}{key}: "), 0), (inner, depth + 1)]
            stack.extend(reversed(pending))
            continue
        elif isinstance(item, list):
            pending = []
            for n, inner in enumerate(item):
                pending += [(_Separator(", "), 0)] if n else []
                pending.append((inner, depth + 1))
            stack.extend(reversed(pending))
            continue
        else:
            text = str(item)
        parts.append(text)
        size += len(text)
    return "".join(parts)[:limit]


def status_error(
    status: int,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str] = (),
) -> APIStatusError:
    """The typed error for an answer with a failing ``status``; ``secrets`` are redacted from
    everything it carries."""
    secrets = tuple(secrets)
    detail = error_message(body, secrets)
    reason = f"HTTP {status} for {method} {path}" + (f": {detail}" if detail else "")
    headers = redact_headers(headers, secrets)
    fields: dict[str, Any] = {
        "status": status,
        "method": method,
        "url_path": path,
        "body": clip(body[:_PREFIX].decode("utf-8", "replace"), secrets, _EXCERPT),
        "headers": headers,
        "request_id": headers.get("X-Request-Id"),
    }
    if status == 429:
        return RateLimitError(
            reason, retry_after=parse_retry_after(headers.get("Retry-After")), **fields
        )
    kind = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
    return kind(reason, **fields)


Decode = Callable[[bytes], Any]
"""Reads a successful answer's body; raises :class:`ResponseValidationError` to have it retried."""


def decode_json(body: bytes) -> Any:
    """The decoded JSON of ``body`` (``None`` for an empty body)."""
    if not body.strip():
        return None
    try:
        return loads(body)
    except JSONError:
        raise NotJSON(body) from None


_JSON_ENDS = {b"{": b"}", b"[": b"]", b'"': b'"'}
_JSON_STARTS = frozenset(b'{["-0123456789tfn')


def json_like(body: bytes) -> bytes:
    """``body`` itself when it looks like JSON, to be decoded later.

    A few byte comparisons catch what servers send instead of JSON (an HTML or text page, an
    empty or cut-off body) without paying for decoding twice.
    """
    text = body.strip()
    if text and text[0] in _JSON_STARTS and _JSON_ENDS.get(text[:1], text[-1:]) == text[-1:]:
        return body
    raise NotJSON(body)


def keep_bytes(body: bytes) -> bytes:
    """``body`` as it came: any successful answer is accepted."""
    return body


class NotJSON(ResponseValidationError):
    """A body that is not JSON; the transport names it in a message without secrets."""

    def __init__(self, body: bytes) -> None:
        super().__init__("the answer is not JSON")
        self.body = body

    def described(self, secrets: Iterable[str]) -> str:
        return f"the answer is not JSON: {error_message(self.body, secrets)[:80]!r}"
