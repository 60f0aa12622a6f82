"""The engine that streams every item of a paginated list (its plain data, :class:`Page`,
:class:`PageMeta`, :class:`Checkpoint` and :class:`StreamStats`, is re-exported here).

A :class:`PageStream` reads the first page alone to learn ``meta.total_pages``, then fetches the
following pages concurrently and hands out their items in page order (or as pages arrive, with
``ordered=False``). At most ``2 * concurrency`` pages are in flight or waiting, plus the one
being consumed, whatever the list's size: a slow page holds the window back rather than letting
later pages pile up.

Exactness: a customer that stays in the list from the start of a crawl to its end is handed
out exactly once. Page-number pagination shifts customers across page boundaries when the list
changes; with changes before the pages being read, a customer's position minus the list's
``total_count`` does not change, so when the page after a boundary saw a smaller count than the
page before it, that many customers were skipped there. Once its own pages are done the stream
reads again the pages that now hold them and hands out only those, retrying while the list
still moves, and raises :class:`~uphance_async.errors.DriftError` after 8 rounds.

Each page downloads in a task of its own, outside any task group or cancel scope, so nothing is
ever yielded from inside one (PEP 789); the consumer parses a page when it asks for it. Leaving
the loop, an exception in its body or cancelling the consumer stops the fetching: at once with
``async with`` or :meth:`aclose`, and otherwise as soon as the stream object is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar

import anyio
import attrs

from ._dedupe import SeenKeys, id_key, ints_only, keys_of
from ._events import Observer, RequestEvent
from ._pages import Checkpoint, Page, PageMeta, StreamStats
from ._validate import positive_int
from .errors import DriftError, PaginationError, UphanceError

__all__ = [
    "Checkpoint",
    "Page",
    "PageMeta",
    "PageSource",
    "PageStream",
    "Seams",
    "StreamRegistry",
    "StreamStats",
    "id_key",
]

T = TypeVar("T")


def _collect_between_pages() -> None:
    """Collect the collector's middle generation now, between two pages, if it is nearly due.

    A page's records are alive while it is decoded and handed out; the middle generation
    collected then would move them to the oldest, whose collections walk every object of the
    process (45,000 in the benchmark: 10 to 18 ms each), although they die a page later.
    Collected here, once the consumer let the last page go, only what is still alive moves. A
    page of 100 customers makes one or two collections of the youngest generation, so "nearly"
    is within two. The thresholds are the interpreter's, and nothing runs while the collector
    is disabled (``gc.disable()``, or a threshold of zero).
    """
    thresholds = gc.get_threshold()
    due = thresholds[1]
    if thresholds[0] and due and gc.isenabled() and gc.get_count()[1] + 2 >= due:
        gc.collect(1)


# A page that brings no item not seen before happens when the list changes during a crawl;
# this many in a row means the server is serving the same records again and again.
_STALE_PAGES = 5
# Rounds of re-reading the pages a change may have moved customers across, before the list is
# declared too busy to crawl exactly.
_REPAIR_ROUNDS = 8
# Whole passes over the list that verify=True may make after the crawl.
_VERIFY_PASSES = 3
# A server that announces no totals gets at most this many pages.
MAX_PAGES_WITHOUT_TOTALS = 10_000


class PageSource(Protocol):
    """Where a :class:`PageStream` gets its pages: bytes from the network, and a pure parser.

    Pages hold the JSON objects as they came; the stream converts each one (its ``convert``)
    only when it hands it out, so a converted item usually dies before the garbage collector
    ever looks at it.
    """

    async def download(self, number: int, observer: Observer) -> bytes:
        """The undecoded body of page ``number``, every retry done (a body that is not JSON
        included); ``observer`` is told of each attempt."""
        ...

    def parse(self, body: bytes) -> Page[Any]:
        """A downloaded body as a page, with no I/O; raises an error if it is not a page."""
        ...


@attrs.frozen(slots=True)
class _Failure:
    page: int
    error: BaseException


_Message = tuple[int, Page[Any]] | _Failure
_Download = tuple[int, bytes] | _Failure


class PageStream(Generic[T]):
    """Every item of a paginated list, fetched concurrently; an async iterator and context manager.

    Items whose ``key`` was already handed out are dropped (page-number pagination repeats
    records when the list changes during the crawl). ``stats`` counts what happened and
    ``checkpoint`` says where to resume. An error that outlives the retries is raised after
    every item of the pages before it, with ``error.checkpoint`` set.
    """

    def __init__(
        self,
        source: PageSource,
        *,
        key: Callable[[Any], Hashable],
        convert: Callable[..., T] | None = None,
        concurrency: int,
        start_page: int = 1,
        ordered: bool = True,
        params: dict[str, str] | None = None,
        items_yielded: int = 0,
        stop_page: int | None = None,
        registry: StreamRegistry | None = None,
        resumed: Checkpoint | None = None,
        verify: bool = False,
    ) -> None:
        self._pump: _Pump | None = None
        self._closed = False
        self._closed_by: UphanceError | None = None
        positive_int("concurrency", concurrency)
        positive_int("start_page", start_page)
        if stop_page is not None and positive_int("stop_page", stop_page) < start_page:
            raise ValueError(f"stop_page {stop_page} comes before the first page, {start_page}")
        self._stop_page = stop_page
        self._source = source
        self._key = key
        self._convert = convert
        # The conversion the current page needs, if any (see _converts).
        self._page_convert = convert
        self._concurrency = concurrency
        self._ordered = ordered
        self._params = dict(params or {})
        self._registry = registry
        self.stats = StreamStats()
        self._base_yielded = items_yielded
        self._seen = SeenKeys()
        self._next_page = start_page
        self._done_pages: set[int] = set()
        self._items: Sequence[Any] = ()
        self._page_items: Sequence[Any] = ()
        self._page_no = 0
        self._index = 0
        self._stale_pages = 0
        # What the drift repair needs: the list's count as each page was read, the page size,
        # and the pages found by the repair, handed out after the crawl's own pages.
        self._counts: dict[int, int] = {}
        self._start_page = start_page
        self._latest_count: int | None = None
        self._page_size = 0
        self._page_ids: dict[int, tuple[int, ...]] = {}
        self._repaired: list[_Message] | None = None
        # verify=True: whole passes over the list after the crawl, until one finds nothing new.
        self._verify_passes = _VERIFY_PASSES if verify else 0
        self._verifying = False
        self._verify_done = 0
        self._verify_found = 0
        self._verify_counts: set[int | None] = set()
        self._first_count = resumed.first_count if resumed is not None else None
        self._first_ids = resumed.first_ids if resumed is not None else ()
        if resumed is not None and resumed.total_count is not None and start_page > 1:
            # The page before the resume point, as the checkpoint saw it.
            self._counts[start_page - 1] = resumed.total_count
            self._page_size = resumed.page_size or 0
            self._page_ids[start_page - 1] = resumed.last_ids
            for seen in resumed.last_ids:
                self._seen.add(seen)

    @property
    def checkpoint(self) -> Checkpoint:
        """Resume point: the first page whose items were not all handed out yet."""
        return Checkpoint(
            next_page=self._next_page,
            params=dict(self._params),
            items_yielded=self._base_yielded + self.stats.items_yielded,
            stop_page=self._stop_page,
            total_count=self._counts.get(self._next_page - 1),
            page_size=self._page_size or None,
            last_ids=self._page_ids.get(self._next_page - 1, ()),
            first_count=self._first_count,
            first_ids=self._first_ids,
        )

    def __aiter__(self) -> PageStream[T]:
        return self

    async def __aenter__(self) -> PageStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> T:
        # The hot path, once per item: an index check and the item's conversion.
        if self._index >= len(self._items):
            await self._next_page_items()
        items, index = self._items, self._index
        self._index = index + 1
        convert = self._page_convert
        if convert is None:
            item: T = items[index]
        else:
            try:
                item = convert(items[index])
            except Exception as exc:
                raise await self._bad_item(exc, items[index]) from None
        self.stats.items_yielded += 1
        return item

    async def _next_page_items(self) -> None:
        """Move on to the next page with items not handed out before."""
        # The consumer is done with this page: let it go before the next is decoded, so that
        # the collector never finds two pages alive (it would move more of them to its
        # oldest generation, whose collections walk every object of the process).
        self._items = self._page_items = ()
        self._index = 0
        _collect_between_pages()
        while True:
            if self._closed_by is not None:
                raise self._closed_by
            if self._page_no:
                self._page_done(self._page_no)
                self._page_no = 0
            message = await self._next_message()
            if isinstance(message, _Failure):
                raise await self._failed(message.error)
            self._page_no, page = message
            self._page_items = page.items
            keys = keys_of(page.items, self._key)
            if self._verifying:
                self._verify_counts.add(page.meta.total_count)
                self._page_no = 0
            elif self._page_no:
                try:
                    self._observe(self._page_no, page, keys)
                except DriftError as exc:
                    raise await self._failed(exc) from None
            self._items = self._seen.fresh(page.items, keys)
            self._page_convert = self._convert if self._converts(self._items) else None
            if self._verifying:
                self._verify_found += len(self._items)
            else:
                self.stats.duplicates_dropped += len(page.items) - len(self._items)
            if self._items:
                self._stale_pages = 0
                return
            if not self._page_no:
                continue  # a page read again by the repair, with nothing it had missed
            self._stale_pages += 1
            if self._stale_pages >= _STALE_PAGES and page.meta.next_page is not None:
                raise await self._failed(
                    PaginationError(
                        f"pages {self._page_no - _STALE_PAGES + 1} to {self._page_no} brought no "
                        f"record not seen before, and page {self._page_no} still points to "
                        f"page {page.meta.next_page}: the server repeats itself",
                        page=self._page_no,
                    )
                )

    def _converts(self, items: Sequence[Any]) -> bool:
        """Whether ``items`` need converting: not when the page decoded straight into the
        models (the converter hands back such an item itself), which saves a call per item."""
        if self._convert is None or not items:
            return self._convert is not None
        try:
            return self._convert(items[0]) is not items[0]
        except Exception:
            return True  # the item's error is raised when the item is reached

    def _observe(self, number: int, page: Page[Any], keys: list[Hashable]) -> None:
        """Keep what the drift repair and the checkpoint need of a page of the crawl."""
        self._page_size = max(self._page_size, len(page.items))
        count = page.meta.total_count
        if count is None:
            return
        before = self._counts.get(number - 1) if number == self._start_page else None
        if before is not None:
            grown = count - before
            if grown > len(self._page_ids.get(number - 1, ())):
                raise DriftError(
                    f"{grown} customers were added before the resume point since the checkpoint "
                    "was made: some already handed out would come again; run again from the start",
                    page=number,
                )
        self._counts[number] = self._latest_count = count
        if len(self._counts) > 1 and count != next(iter(self._counts.values())):
            self.stats.drift = True
        ints = keys if ints_only(keys) else [key for key in keys if type(key) is int]
        self._page_ids[number] = tuple(ints)  # type: ignore[arg-type]  # ints only, checked
        if number == self._start_page and self._first_count is None:
            self._first_count, self._first_ids = count, self._page_ids[number]

    async def _repair(self) -> list[_Message]:
        """The pages that hold the customers a change of the list moved past a page boundary
        during the crawl, read again now (only those customers kept); a failure last when the
        list did not hold still long enough to find them."""
        counts = self._counts
        gaps = [
            gap
            for number in sorted(counts)
            if number + 1 in counts
            and (gap := seam_gap(number, self._page_size, counts[number], counts[number + 1]))
        ]
        if not gaps or self._latest_count is None:
            return []
        pages, settled = await read_gaps(
            self._source, gaps, self._page_size, self._latest_count, self.stats
        )
        found: list[_Message] = [(0, page) for page in pages]
        return found if settled else [*found, _Failure(0, drift_error(max(counts)))]

    async def _bad_item(self, error: Exception, raw: Any) -> BaseException:
        """Convert ``raw`` again with its position in the page, for an error naming its path."""
        assert self._convert is not None
        position = next((n for n, item in enumerate(self._page_items) if item is raw), 0)
        try:
            self._convert(raw, position)
        except Exception as precise:
            error = precise
        return await self._failed(error)

    async def _failed(self, error: BaseException) -> BaseException:
        await self.aclose()
        if isinstance(error, UphanceError):
            error.checkpoint = self.checkpoint
        return error

    async def _next_message(self) -> _Message:
        if self._closed:
            raise self._closed_by or StopAsyncIteration()
        if self._pump is None:
            self._start()
        assert self._pump is not None
        message = await self._pump.next()
        if self._closed:
            # Closed while this consumer waited: by its client, or by another task.
            raise self._closed_by or StopAsyncIteration()
        if message is not None:
            return message
        # The crawl's own pages are done: then the pages a change made it miss, if any.
        if self._repaired is None:
            try:
                self._repaired = await self._repair()
            except Exception as exc:
                self._repaired = [_Failure(0, exc)]
        if self._repaired:
            return self._repaired.pop(0)
        if self._verify_passes:
            try:
                again = await self._verify_again()
            except DriftError as exc:
                raise await self._failed(exc) from None
            if again:
                return await self._next_message()
        await self.aclose()
        raise StopAsyncIteration

    async def _verify_again(self) -> bool:
        """Start another verifying pass when one is due; raises :class:`DriftError` when the
        passes allowed all found customers the crawl had missed (or saw the count move)."""
        settled = self._verifying and not self._verify_found and len(self._verify_counts) == 1
        if settled:
            return False
        if self._verifying and self._verify_passes == self._verify_done:
            raise drift_error(self._next_page - 1)
        self._verify_done += 1
        self.stats.verify_passes += 1
        self._verifying, self._verify_found = True, 0
        self._verify_counts.clear()
        if self._pump is not None:
            await self._pump.stop()
        self._launch(self._start_page, ordered=False)
        return True

    def _page_done(self, number: int) -> None:
        self.stats.pages_done += 1
        self._done_pages.add(number)
        while self._next_page in self._done_pages:
            self._done_pages.discard(self._next_page)
            self._page_ids.pop(self._next_page - 1, None)
            self._next_page += 1

    def _start(self) -> None:
        self.stats.started = time.monotonic()
        self._launch(self._next_page, ordered=self._ordered)
        if self._registry is not None:
            self._registry.add(self)

    def _launch(self, first: int, *, ordered: bool) -> None:
        """Start a pass over the pages from ``first`` on."""
        # The pump's download tasks must not hold a reference to this stream, so that
        # dropping the stream (leaving an `async for` without `async with`) lets __del__ stop
        # them.
        self._pump = _Pump(
            self._source,
            key=self._key,
            concurrency=self._concurrency,
            stats=self.stats,
            stop_page=self._stop_page,
            first=first,
            ordered=ordered,
        )

    async def aclose(self) -> None:
        """Stop fetching, and wait until every request of this stream has ended.

        Iterating a closed stream ends at once (``StopAsyncIteration``), except after its
        client was closed, which raises :class:`~uphance_async.errors.ClientClosedError`.
        """
        await self._shutdown(None)

    async def _shutdown(self, reason: UphanceError | None) -> None:
        if self._closed_by is None and reason is not None and not self._closed:
            reason.checkpoint = self.checkpoint
            self._closed_by = reason
        self._items = ()
        self._closed = True
        if self.stats.finished is None and self.stats.started is not None:
            self.stats.finished = time.monotonic()
        if self._pump is not None:
            await self._pump.stop()

    def __del__(self) -> None:
        if self._pump is not None:
            # Dropped after its loop closed (at interpreter exit): nothing left to stop.
            with contextlib.suppress(RuntimeError):
                self._pump.cancel()


Gap = tuple[int, int]
"""Customers a change skipped, as a range of (position in the list - the list's count): under
changes before them that value stays the same for every customer that stays."""


def seam_gap(last: int, size: int, count_before: int, count_after: int) -> Gap | None:
    """The customers skipped at the boundary after page ``last`` (pages of ``size``), read when
    the list held ``count_before`` and, for page ``last + 1``, ``count_after``: a smaller count
    after the boundary means that many customers moved back past it unseen."""
    if not size or count_after >= count_before:
        return None
    return last * size - count_before, last * size - count_after


class _Reads(Protocol):
    pages_reread: int
    pages_fetched: int

    def observe(self, event: RequestEvent) -> None: ...


async def read_gaps(
    source: PageSource, gaps: list[Gap], size: int, count: int, stats: _Reads
) -> tuple[list[Page[Any]], bool]:
    """Read again the pages that now hold the customers in ``gaps`` (``count``: the list's
    latest count), each page cut down to those customers, until every page read in one round
    saw the same count; the pages, and False when the list was still changing after
    :data:`_REPAIR_ROUNDS` rounds."""
    found: list[Page[Any]] = []
    for _ in range(_REPAIR_ROUNDS):
        wanted = sorted(
            {
                number
                for low, high in gaps
                for number in range(
                    max(0, low + count) // size + 1, max(0, high + count - 1) // size + 2
                )
            }
        )
        pages: dict[int, Page[Any]] = {}
        async with anyio.create_task_group() as group:
            for number in wanted:
                group.start_soon(_read_into, pages, source, number, stats.observe)
        stats.pages_reread += len(wanted)
        stats.pages_fetched += len(wanted)
        found += [_within(number, pages[number], size, gaps) for number in wanted]
        seen = {page.meta.total_count for page in pages.values()}
        if seen <= {count}:
            return found, True
        count = max((c for c in seen if c is not None), default=count)
    return found, False


@attrs.frozen(slots=True)
class Seams:
    """What :meth:`~uphance_async.resources.customers.CustomersAPI.mend` found at the
    boundaries between partitions: ``missed``, the customers no partition handed out (add
    them), and ``repeated``, the ids two neighbouring partitions both handed out (keep one)."""

    missed: tuple[Any, ...] = ()
    repeated: frozenset[Hashable] = frozenset()
    pages_reread: int = 0


async def mend_seams(source: PageSource, ends: Sequence[Checkpoint]) -> Seams:
    """The :class:`Seams` between partitions whose last checkpoints are ``ends``, in page
    order; the missed customers come as the page source's records."""
    gaps: list[Gap] = []
    repeated: set[Hashable] = set()
    size = max((end.page_size or 0 for end in ends), default=0)
    counts = [count for end in ends for count in (end.total_count, end.first_count) if count]
    for before, after in pairwise(ends):
        last = before.stop_page
        if last is None or before.next_page != last + 1 or after.next_page <= last + 1:
            raise ValueError(
                "mend() takes the last checkpoints of finished partitions, in page order"
            )
        if before.total_count is None or after.first_count is None or not size:
            continue  # a server without totals: nothing to go by
        gap = seam_gap(last, size, before.total_count, after.first_count)
        if gap is not None:
            gaps.append(gap)
        grown = after.first_count - before.total_count
        if grown > len(after.first_ids):
            raise DriftError(
                f"{grown} customers were added before page {last + 1} between the reads of "
                "its neighbouring partitions: too many to tell which came twice",
                page=last + 1,
            )
        if grown > 0:
            repeated |= set(before.last_ids) & set(after.first_ids)
    if not gaps:
        return Seams(repeated=frozenset(repeated))
    stats = StreamStats()
    pages, settled = await read_gaps(source, gaps, size, max(counts), stats)
    if not settled:
        raise drift_error(max(end.next_page for end in ends))
    missed = tuple(item for page in pages for item in page.items)
    return Seams(missed=missed, repeated=frozenset(repeated), pages_reread=stats.pages_reread)


async def _read_into(
    pages: dict[int, Page[Any]], source: PageSource, number: int, observe: Observer
) -> None:
    pages[number] = source.parse(await source.download(number, observe))


def drift_error(page: int) -> DriftError:
    """The error of a list that did not hold still long enough to be crawled exactly."""
    return DriftError(
        f"the list kept changing while {_REPAIR_ROUNDS} rounds re-read the pages where "
        "customers may have been skipped: some customers that stayed in the list may be "
        "missing; run the crawl again when the list is quieter",
        page=page,
    )


def _within(number: int, page: Page[Any], size: int, gaps: list[Gap]) -> Page[Any]:
    """Page ``number`` with only the items in a gap: those whose position minus the page's
    count lies in one of ``gaps`` (a page read again also holds customers handed out before,
    perhaps by an earlier run that a resumed stream cannot dedupe against)."""
    count = page.meta.total_count
    if count is None:
        return page
    start = (number - 1) * size - count
    kept = tuple(
        item
        for offset, item in enumerate(page.items)
        if any(low <= start + offset < high for low, high in gaps)
    )
    return attrs.evolve(page, items=kept)


class StreamRegistry:
    """The open streams of one client, so that closing the client stops every one of them."""

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[PageStream[Any]] = weakref.WeakSet()

    def add(self, stream: PageStream[Any]) -> None:
        """Keep ``stream`` (weakly: a dropped stream stops itself)."""
        self._streams.add(stream)

    async def close_all(self, reason: UphanceError) -> None:
        """Stop every stream; iterating one of them then raises ``reason``."""
        for stream in list(self._streams):
            await stream._shutdown(reason)


class _Pump:
    """Downloads the pages of one pass over the list, each in a task of its own, and hands
    them to the consumer: :meth:`next` in page order, or as each arrives (``ordered=False``).

    At most ``2 * concurrency`` pages are downloading or waiting, as undecoded bytes. A page is
    parsed in the consumer's task when the consumer asks for it, so that one decoded page is
    alive at a time and its data is still in the CPU's caches when its items are handed out.
    Nothing is yielded from inside a task group or cancel scope (PEP 789): the downloads are
    plain tasks, and a consumer cancelled while it waits for one leaves it running. Retries
    all happen in the transport; a page that cannot be parsed ends the pass with its error.
    """

    def __init__(
        self,
        source: PageSource,
        *,
        key: Callable[[Any], Hashable],
        concurrency: int,
        stats: StreamStats,
        stop_page: int | None,
        first: int,
        ordered: bool,
    ) -> None:
        self._source = source
        self._key = key
        self._heads: set[Hashable] = set()
        self._limiter = asyncio.Semaphore(concurrency)
        self._window = 2 * concurrency
        self._stats = stats
        self._most_pages = 0
        self._most_count = 0
        self._page_size = 0
        self._ordered = ordered
        # The next page to download and (in order) to hand over; until the first page has
        # told how many follow, it is the only one known to exist.
        self._upcoming = self._deliver = self._last = first
        # The page after which there are none.
        self._end = float(stop_page) if stop_page is not None else math.inf
        # The pages downloading or downloaded and not yet handed over, by number.
        self._tasks: dict[int, asyncio.Task[_Download]] = {}
        # A failure found after a page was handed over, to hand over next.
        self._failure: _Failure | None = None
        self._over = False

    async def next(self) -> _Message | None:
        """The next page (or the failure that ends the pass); ``None`` once the pass is over."""
        while not self._over:
            if self._failure is not None:
                self.cancel()
                return self._failure
            if self._ordered and self._deliver > min(self._last, self._end):
                break
            self._start_downloads()
            number = self._ready()
            if number is None:
                if not self._tasks:
                    break
                await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                continue
            download = self._tasks.pop(number).result()
            if self._ordered:
                self._deliver += 1
            elif number > self._end:
                continue
            message = self._hand_over(number, download)
            self._start_downloads()
            return message
        self.cancel()
        return None

    def _ready(self) -> int | None:
        """The page to hand over now, if its download has ended: the next in page order, or
        (not ordered) the lowest-numbered one that has ended."""
        if self._ordered:
            task = self._tasks.get(self._deliver)
            return self._deliver if task is not None and task.done() else None
        ended = [number for number, task in self._tasks.items() if task.done()]
        return min(ended, default=None)

    def _start_downloads(self) -> None:
        """Start downloads while the window has room and pages are known to exist (none once
        a failure ends the pass)."""
        if self._over or self._failure is not None:
            return
        loop = asyncio.get_running_loop()
        while len(self._tasks) < self._window and self._upcoming <= min(self._last, self._end):
            self._tasks[self._upcoming] = loop.create_task(self._download(self._upcoming))
            self._upcoming += 1

    def cancel(self) -> None:
        """Cancel the downloads still running; the pass is over."""
        self._over = True
        for task in self._tasks.values():
            task.cancel()

    async def stop(self) -> None:
        """Cancel the downloads still running and wait until they have ended."""
        self.cancel()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if tasks:
            await asyncio.wait(tasks)

    async def _download(self, number: int) -> _Download:
        try:
            async with self._limiter:
                body = await self._source.download(number, self._stats.observe)
        except Exception as exc:
            return _Failure(number, exc)
        self._stats.pages_fetched += 1
        return number, body

    def _hand_over(self, number: int, download: _Download) -> _Message:
        """Parse one downloaded page and learn from it which pages follow; the message for
        the consumer. A failure ends the pass (one found in the page's ``meta`` is kept, to
        be handed over after the page)."""
        if isinstance(download, _Failure):
            self.cancel()
            return download
        try:
            page = self._source.parse(download[1])
        except Exception as exc:
            self.cancel()
            return _Failure(number, exc)
        self._saw(page)
        self._upcoming = max(self._upcoming, number + 1)
        following = self._following(number, page)
        if following is None:
            self._end = min(self._end, number)
        elif following <= number:
            self._failure = _Failure(
                number,
                PaginationError(
                    f"page {number} points to page {following} as the next one: pages must "
                    "go forward, so the list cannot be followed",
                    page=number,
                ),
            )
        else:
            self._failure = self._too_far(following)
            if self._failure is None:
                self._last = max(self._last, following, page.meta.total_pages or 0)
        return number, page

    def _saw(self, page: Page[Any]) -> None:
        self._stats.saw(page.meta)
        self._most_pages = max(self._most_pages, page.meta.total_pages or 0)
        self._most_count = max(self._most_count, page.meta.total_count or 0)
        self._page_size = self._page_size or len(page.items)

    def _too_far(self, number: int) -> _Failure | None:
        """A failure when page ``number`` is far past every total the server announced: twice
        as many pages and ten more leave room for a list that grows during the crawl."""
        known = self._most_pages
        if not known and self._most_count and self._page_size:
            known = -(-self._most_count // self._page_size)
        if not known:
            if number <= MAX_PAGES_WITHOUT_TOTALS:
                return None
            return _Failure(
                number,
                PaginationError(
                    f"the server announces no totals and still points to page {number}, past "
                    f"the {MAX_PAGES_WITHOUT_TOTALS:,} pages read without them",
                    page=number,
                ),
            )
        if number <= 2 * known + 10:
            return None
        return _Failure(
            number,
            PaginationError(
                f"the server points to page {number}, far past the {known} pages it announced",
                page=number,
            ),
        )

    def _following(self, number: int, page: Page[Any]) -> int | None:
        """The page after ``number``: ``meta.next_page``; with no ``meta`` at all, ``number + 1``
        until a page is empty or starts with an item already seen (the server ignores ``page``).
        """
        if page.meta != PageMeta():
            return page.meta.next_page
        if not page.items:
            return None
        head = self._key(page.items[0])
        if head in self._heads:
            return None
        self._heads.add(head)
        return number + 1
