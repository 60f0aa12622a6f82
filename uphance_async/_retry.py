"""RetryPolicy: what is retried, and how long to wait before the next attempt."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import attrs

__all__ = ["RetryPolicy", "parse_retry_after"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@attrs.frozen(slots=True)
class RetryPolicy:
    """How the client retries one request (never a whole stream).

    GET requests are retried on connection errors, timeouts, unreadable bodies and the statuses in
    ``retry_statuses``. A POST is retried only when the server provably did not act on it: the
    connection was refused before anything was sent, or the answer was 429.

    The wait before attempt ``n + 1`` is "full jitter": a random time between 0 and
    ``min(max_backoff, backoff * 2 ** (n - 1))`` seconds; a ``Retry-After`` from the server is
    honoured instead when it is longer, up to ``max_retry_after``. Pass
    ``RetryPolicy(max_attempts=1)`` to turn retries off.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    backoff: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=20.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    retry_statuses: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

    def should_retry_status(self, method: str, status: int) -> bool:
        """Whether an answer with ``status`` to a ``method`` request is worth another attempt."""
        if status == 429:
            return status in self.retry_statuses
        return method in IDEMPOTENT_METHODS and status in self.retry_statuses

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based): the backoff,
        doubled per attempt, up to ``max_backoff``."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        wait = random.uniform(0, self.ceiling(attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``: delta-seconds or an HTTP date.

    Returns ``None`` for a missing or unreadable header; never a negative number.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
