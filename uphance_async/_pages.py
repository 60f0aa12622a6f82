"""What a paginated list is made of, as plain data: pages, their meta, where a stream stands
(:class:`Checkpoint`) and what it counted (:class:`StreamStats`). Importing nothing else of the
package, it is what the engine, the errors and the resources share.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from ._events import RequestEvent

__all__ = ["Checkpoint", "Page", "PageMeta", "StreamStats"]

T = TypeVar("T")


@attrs.frozen(slots=True)
class PageMeta:
    """The ``meta`` object of a list answer. Any field may be ``None`` when the server omits it."""

    current_page: int | None = None
    next_page: int | None = None
    prev_page: int | None = None
    total_pages: int | None = None
    total_count: int | None = None


@attrs.frozen(slots=True)
class Page(Generic[T]):
    """One page of a list: its ``items`` and the server's ``meta``."""

    items: tuple[T, ...]
    meta: PageMeta = PageMeta()


@attrs.frozen(slots=True)
class Checkpoint:
    """Where a stream stands: pass it as ``stream(resume=...)`` to carry on after a failure.

    ``next_page`` is the first page not yet fully handed out; ``params`` are the stream's query
    filters, so a resumed stream lists the same thing; ``stop_page`` is the last page to read
    (``None``: to the end), which a resumed stream keeps. ``total_count`` is the list's count
    when the page before ``next_page`` was read, ``page_size`` the server's page size and
    ``last_ids`` the ids of that page: with them a resumed stream finds the customers a change
    made meanwhile moved across the resume point, and does not repeat those it moved back
    (see :class:`PageStream`). ``first_count`` and ``first_ids`` are the same of the stream's
    first page: with the last checkpoints of all partitions, ``customers.mend()`` repairs the
    boundaries between them. It is plain data:
    ``uphance_async.converter.unstructure(checkpoint)`` gives a JSON-ready dict and
    ``converter.structure(data, Checkpoint)`` reads it back.
    """

    next_page: int
    params: dict[str, str] = attrs.field(factory=dict)
    items_yielded: int = 0
    stop_page: int | None = None
    # What keeps a resume exact, not where it stands: left out of equality (two checkpoints of
    # the same place are equal) and of the repr (a page of ids).
    total_count: int | None = attrs.field(default=None, eq=False)
    page_size: int | None = attrs.field(default=None, eq=False)
    last_ids: tuple[int, ...] = attrs.field(default=(), eq=False, repr=False)
    first_count: int | None = attrs.field(default=None, eq=False)
    first_ids: tuple[int, ...] = attrs.field(default=(), eq=False, repr=False)


@attrs.define(slots=True)
class StreamStats:
    """Counters of one stream, updated as it runs; totals as the server last announced them.

    ``pages_fetched`` counts downloads (they run ahead of the consumer), ``pages_done`` the
    pages whose every item was handed out. ``drift`` tells that the list's ``total_count``
    changed during the crawl, and ``pages_reread`` how many pages were read again to hand out
    the customers the change had moved past a page boundary; ``verify_passes`` counts the
    whole passes ``verify=True`` made after the crawl.
    """

    pages_fetched: int = 0
    pages_done: int = 0
    items_yielded: int = 0
    retries: int = 0
    throttled: int = 0
    duplicates_dropped: int = 0
    drift: bool = False
    pages_reread: int = 0
    verify_passes: int = 0
    total_pages: int | None = None
    total_count: int | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def customers_yielded(self) -> int:
        """``items_yielded``, by the name a customer stream's users look for."""
        return self.items_yielded

    @property
    def elapsed(self) -> float:
        """Seconds from the first request to the end (or to now, while running)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def saw(self, meta: PageMeta) -> None:
        """Keep the latest ``total_pages`` and ``total_count`` the server announced."""
        if meta.total_pages is not None:
            self.total_pages = meta.total_pages
        if meta.total_count is not None:
            self.total_count = meta.total_count

    def observe(self, event: RequestEvent) -> None:
        """Count one HTTP attempt of the stream: a retry after the first, a 429."""
        if event.attempt > 1:
            self.retries += 1
        if event.throttled:
            self.throttled += 1
