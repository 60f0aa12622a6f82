"""What the transport tells about each HTTP attempt: :class:`RequestEvent`, and who listens.

The transport sits below streams and the client; it depends on nothing above it. Whoever wants
to know what happened (a stream's counters, the application's metrics hook) is handed events.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

import attrs

__all__ = ["Observer", "RequestEvent", "call_hook"]

logger = logging.getLogger("uphance_async")


@attrs.frozen(slots=True)
class RequestEvent:
    """One HTTP attempt, as the ``on_request`` hook of :class:`UphanceClient` sees it.

    ``url_path`` has no query string; ``status`` is ``None`` when no answer came, and then
    ``error`` says why; ``elapsed`` is in seconds, from sending to the end of the answer;
    ``attempt`` counts 1, 2, ... for the tries of one request; ``throttled`` is true for a 429.
    No field ever holds a token or a password.
    """

    method: str
    url_path: str
    status: int | None
    error: BaseException | None
    elapsed: float
    attempt: int
    throttled: bool


Observer = Callable[[RequestEvent], None]
"""Told of every attempt of the requests it was passed to."""


def call_hook(hook: Observer | None, event: RequestEvent) -> None:
    """Call an application's hook; one that raises is logged and ignored, never the request's
    problem."""
    if hook is None:
        return
    try:
        result = hook(event)
    except Exception:
        logger.exception("the on_request hook raised; ignored")
        return
    if inspect.isawaitable(result):
        # A hook that returns a coroutine (a lambda around an async def) would leak it.
        if inspect.iscoroutine(result):
            result.close()
        logger.error("the on_request hook returned an awaitable, which is never awaited; ignored")
