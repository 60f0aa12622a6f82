"""The exceptions this library raises.

Every error is an :class:`UphanceError`::

    UphanceError
    ├── ClientClosedError            the client was used after it was closed
    ├── RateLimiterError             the shared rate limiter (Redis) cannot be reached
    ├── APIStatusError               the server answered with an error status
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── UnprocessableEntityError 422
    │   ├── RateLimitError           429
    │   └── ServerError              5xx
    ├── APIConnectionError           the request did not get an answer
    │   └── APITimeoutError
    ├── ResponseValidationError      the answer is not of the expected shape
    │   ├── ResponseTooLargeError    the answer is larger than allowed
    │   └── PaginationError          the pages never end (or cannot be followed)
    │       └── DriftError           the list moved during the crawl and exactness is lost
    ├── RecordEncodingError          an export cannot write a record the server sent
    ├── ExportError                  an export cannot start as asked
    └── OutputStateError             an export's files forbid it now (locked, or not as described)

Every error has ``method`` and ``url_path`` (the request's, when there was one), ``json_path``
(where in an answer, for the errors about its content) and ``checkpoint`` (where to resume, for
an error that ended a stream). No message, ``str()`` or ``repr()`` of these carries a token or a
password.

Every error pickles with its type, message and fields (``headers`` as a plain, redacted,
case-insensitive mapping), so it crosses process boundaries intact: Dask, Celery, arq and
``multiprocessing`` send exceptions that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

if TYPE_CHECKING:
    from ._pages import Checkpoint

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "DriftError",
    "ExportError",
    "NotFoundError",
    "OutputStateError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiterError",
    "RecordEncodingError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "ServerError",
    "UnprocessableEntityError",
    "UphanceError",
]


class UphanceError(Exception):
    """Base of every exception raised by uphance-async.

    ``checkpoint`` is set when the error ends a stream: pass it to ``stream(resume=...)`` to
    carry on after the last page fully yielded. ``method`` and ``url_path`` name the request
    (empty when there was none), ``json_path`` the place in the answer (``None`` when the error
    is not about an answer's content).
    """

    checkpoint: Checkpoint | None = None
    method: str = ""
    url_path: str = ""
    json_path: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as ``type(self)(*self.args)``, which the keyword-only fields of the
        # subclasses refuse: rebuild without calling __init__, then restore every field.
        return _rebuilt, (type(self), self.args), self.__dict__


def _rebuilt(kind: type[UphanceError], args: tuple[Any, ...]) -> UphanceError:
    return kind.__new__(kind, *args)


class ClientClosedError(UphanceError, RuntimeError):
    """The client was closed (or is closing) and cannot send requests."""


class RateLimiterError(UphanceError):
    """The shared rate limiter cannot be used (Redis unreachable); nothing was sent."""


class APIStatusError(UphanceError):
    """The server answered with a status that is not a success.

    ``body`` is a short excerpt of the response body, ``headers`` the response headers and
    ``request_id`` the server's request id header when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        url_path: str,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.url_path = url_path
        self.body = body
        self.headers: Mapping[str, str] = CIMultiDict(headers or {})
        self.request_id = request_id

    @property
    def path(self) -> str:
        """``url_path``, by the name earlier versions used."""
        return self.url_path

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, method={self.method!r}, url_path={self.url_path!r})"


class BadRequestError(APIStatusError):
    """400: the server could not understand the request."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong or expired, or sign-in was refused."""


class PermissionDeniedError(APIStatusError):
    """403: the token is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no such customer (or e-mail, or path)."""


class UnprocessableEntityError(APIStatusError):
    """422: the server rejected the request body; ``body`` says why."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server failed."""


class APIConnectionError(UphanceError):
    """The request got no answer: refused, reset, DNS failure, or a body cut off mid-way."""

    def __init__(self, message: str, *, method: str = "", url_path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url_path = url_path


class APITimeoutError(APIConnectionError):
    """The request timed out (connecting or waiting for the answer)."""


class ResponseValidationError(UphanceError):
    """The answer is not JSON, or not of the expected shape; ``json_path`` names where
    (``$.customers[3].invoices[0].subtotal``)."""

    json_path: str

    def __init__(
        self, message: str, *, json_path: str = "$", method: str = "", url_path: str = ""
    ) -> None:
        super().__init__(message)
        self.json_path = json_path
        self.method = method
        self.url_path = url_path

    @property
    def path(self) -> str:
        """``json_path``, by the name earlier versions used."""
        return self.json_path


class ResponseTooLargeError(ResponseValidationError):
    """The answer is larger than the client's ``max_response_bytes``."""


class PaginationError(ResponseValidationError):
    """The server's pages cannot be followed to an end: page after page brings nothing new, or
    the page numbers run far past the totals the server announced. ``page`` names the page."""

    def __init__(self, message: str, *, page: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.page = page


class DriftError(PaginationError):
    """The list changed during the crawl in a way that cannot be repaired in bounded time, so
    some customers that stayed in the list may not have been handed out: the stream delivered
    what it had, then raised this rather than end as if complete. ``checkpoint`` resumes."""


class RecordEncodingError(UphanceError):
    """An export cannot write a record as asked: ``record_id`` names it, ``json_path`` the place.

    The export stops before the record, so a resumed export stops at the same one: the message
    says so, and what to do.
    """

    json_path: str

    def __init__(self, message: str, *, record_id: Any, json_path: str) -> None:
        super().__init__(message)
        self.record_id = record_id
        self.json_path = json_path


class ExportError(UphanceError):
    """An export cannot start as asked: options that do not go together, or a checkpoint that
    cannot be used (a usage problem, not an API one)."""


class OutputStateError(UphanceError):
    """The output's files forbid this export now: another export holds them, or the checkpoint
    does not describe the partial file beside it."""
