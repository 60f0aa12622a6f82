"""One paginated Uphance list, described as data: :class:`ListEndpoint`.

Every Uphance list (customers, invoices, credit notes, pick tickets, sales orders...) answers
``GET <path>?page=N`` with its records under a key and a ``meta`` object. A list endpoint is its
path, that key and optionally the model its records become; this module turns that into pages
for the streaming engine, one page for ``page()``, and a stream with resume checks. A typed
resource is then a few lines: see ``customers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import attrs

from .._convert import decoded_check, structure_hook, validation_error
from .._dedupe import dict_ids, of_types
from .._events import Observer
from .._json import JSONError, TypedPages, loads
from .._protocol import json_like
from .._transport import Transport
from .._validate import positive_int
from ..errors import ResponseValidationError
from ..pagination import Checkpoint, Page, PageStream, Seams, StreamRegistry, id_key, mend_seams
from ._shapes import answer_to, items, page_meta

__all__ = ["ListEndpoint", "ListResource", "Record", "StreamOptions"]

T = TypeVar("T")

Record = dict[str, Any]
"""A record of a list as the JSON object it came as."""


_PAGE_CHECKS: dict[Callable[[Any], Record], Callable[[list[Any]], bool]] = {}
_OBJECT = frozenset((dict,))
_ID = frozenset((int, str))


def whole_page(
    test: Callable[[list[Any]], bool],
) -> Callable[[Callable[[Any], Record]], Callable[[Any], Record]]:
    """Give a record check its page-level twin: ``test`` tells at C speed that every record of
    a page would pass the check unchanged, so that a usual page costs no call per record."""

    def register(check: Callable[[Any], Record]) -> Callable[[Any], Record]:
        _PAGE_CHECKS[check] = test
        return check

    return register


def objects(records: list[Any]) -> bool:
    """Whether every record is a JSON object."""
    return of_types(records, _OBJECT)


def objects_with_ids(records: list[Any]) -> bool:
    """Whether every record is a JSON object whose ``id`` is an int or a str."""
    return objects(records) and of_types(dict_ids(records), _ID)


@whole_page(objects)
def _record(item: Any) -> Record:
    if item.__class__ is not dict:
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    return item


@attrs.frozen
class ListEndpoint(Generic[T]):
    """``GET path?page=N``, whose records are under ``key`` (e.g. ``"invoices"``).

    With a ``model`` (an attrs class), records can be handed out as that model; each record
    must then be a JSON object with an ``id``. ``check`` may replace the per-record check of
    raw pages (it raises for a record that does not belong in the list). With ``exact_key`` an
    object answer must hold its records under ``key`` itself (a list the user named), not merely
    hold one list.
    """

    path: str
    key: str
    model: type[T] | None = None
    check: Callable[[Any], Record] = _record
    exact_key: bool = False

    def pages(
        self, transport: Transport, params: dict[str, str], *, typed: bool = False
    ) -> _Pages[T]:
        """The pages of this list for the query ``params`` (a :class:`PageSource`); ``typed``
        pages hold models where a page decodes straight into them, raw records elsewhere."""
        return _Pages(self, transport, params, typed=typed and self.model is not None)

    async def page(self, transport: Transport, number: int, params: dict[str, str]) -> Page[T]:
        """Page ``number``, every record converted to the model."""
        pages = self.pages(transport, params, typed=True)
        found = pages.parse(await pages.download(number, None))
        converted = tuple(map(pages.convert, found.items, range(len(found.items))))
        return Page(items=converted, meta=found.meta)

    async def partitions(
        self, transport: Transport, params: dict[str, str], count: int, *, overlap: int = 0
    ) -> tuple[Checkpoint, ...]:
        """At most ``count`` checkpoints whose page ranges are contiguous and cover the list.

        Page 1 tells how many pages there are (``meta.total_pages``, else ``total_count``
        divided by its length). The last range is open-ended, so pages added meanwhile are
        read; each other range reads ``overlap`` pages past its end as well.
        """
        positive_int("count", count)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"overlap must be an int >= 0, not {overlap!r}")
        pages = self.pages(transport, params)
        first = pages.parse(await pages.download(1, None))
        meta = first.meta
        total = meta.total_pages
        if total is None and meta.total_count is not None and first.items:
            total = -(-meta.total_count // len(first.items))
        ranges = min(count, max(1, total or 1))
        size, extra = divmod(max(1, total or 1), ranges)
        found = []
        start = 1
        for number in range(ranges):
            end = start + size - (0 if number < extra else 1)
            last = number == ranges - 1
            found.append(
                Checkpoint(
                    next_page=start, params=dict(params), stop_page=None if last else end + overlap
                )
            )
            start = end + 1
        return tuple(found)

    async def mend(
        self, transport: Transport, ends: Sequence[Checkpoint], *, raw: bool = False
    ) -> Seams:
        """The :class:`Seams` between finished partitions, from their last checkpoints."""
        ends = tuple(ends)
        if not ends or not all(isinstance(end, Checkpoint) for end in ends):
            raise TypeError("mend() takes the last Checkpoint of every partition, in page order")
        if any(end.params != ends[0].params for end in ends):
            raise ValueError("the partitions given were made with different filters")
        pages = self.pages(transport, dict(ends[0].params), typed=not raw)
        seams = await mend_seams(pages, ends)
        if raw or self.model is None:
            return seams
        return attrs.evolve(seams, missed=tuple(map(pages.convert, seams.missed)))

    def stream(
        self,
        transport: Transport,
        params: dict[str, str],
        *,
        concurrency: int,
        start_page: int = 1,
        stop_page: int | None = None,
        ordered: bool = True,
        resume: Checkpoint | None = None,
        raw: bool = False,
        registry: StreamRegistry | None = None,
        filters_given: bool = True,
        verify: bool = False,
    ) -> PageStream[Any]:
        """Every record of the list, streamed by the engine (see :class:`PageStream`).

        ``resume`` continues from a checkpoint: its ``params`` and ``stop_page`` are used,
        and filters given as well must be the same (``filters_given=False`` when none were).
        """
        first, yielded = start_page, 0
        if resume is not None:
            if not isinstance(resume, Checkpoint):
                raise TypeError(f"resume must be a Checkpoint, not {type(resume).__name__}")
            if filters_given and params != resume.params:
                raise ValueError("the filters given differ from those of the checkpoint")
            if stop_page is not None and stop_page != resume.stop_page:
                raise ValueError("the stop_page given differs from that of the checkpoint")
            params, first, yielded = dict(resume.params), resume.next_page, resume.items_yielded
            stop_page = resume.stop_page
        pages = self.pages(transport, params, typed=not raw)
        return PageStream(
            pages,
            key=id_key,
            convert=None if raw or self.model is None else pages.convert,
            concurrency=concurrency,
            start_page=first,
            stop_page=stop_page,
            ordered=ordered,
            params=params,
            items_yielded=yielded,
            registry=registry,
            resumed=resume,
            verify=verify,
        )


class StreamOptions(TypedDict, total=False):
    """How a stream crawls (see ``client.customers.stream``); every list's streams take them."""

    concurrency: int | None
    start_page: int
    stop_page: int | None
    ordered: bool
    resume: Checkpoint | None
    verify: bool


_STREAM_OPTIONS = frozenset(StreamOptions.__annotations__)


class ListResource(Generic[T]):
    """A typed list on a client's transport: one page, typed and raw streams of it, partitions
    and their mending. A resource for a list is its :class:`ListEndpoint` and the query its
    own filters make, e.g. with the existing ``Invoice`` model::

        INVOICES = ListEndpoint("/invoices", "invoices", Invoice)

        class InvoicesAPI:
            def __init__(self, invoices: ListResource[Invoice]) -> None:
                self._invoices = invoices

            def stream(self, since_id: int = 0, **options: Unpack[StreamOptions]):
                return self._invoices.typed({"since_id": str(since_id)}, **options)
    """

    def __init__(
        self,
        endpoint: ListEndpoint[T],
        transport: Transport,
        *,
        concurrency: Callable[[], int],
        registry: StreamRegistry,
    ) -> None:
        self._endpoint = endpoint
        self._transport = transport
        self._concurrency = concurrency
        self._registry = registry

    async def page(self, number: int, params: dict[str, str]) -> Page[T]:
        """Page ``number`` for the query ``params``, its records as the model."""
        return await self._endpoint.page(self._transport, positive_int("page", number), params)

    def typed(
        self,
        params: dict[str, str],
        *,
        filters_given: bool = True,
        **options: Unpack[StreamOptions],
    ) -> PageStream[T]:
        """Every record for the query ``params``, as the model (``filters_given``: whether the
        caller named filters, which a ``resume`` checkpoint must then match)."""
        stream: PageStream[T] = self._open(params, False, filters_given, options)
        return stream

    def raw(
        self,
        params: dict[str, str],
        *,
        filters_given: bool = True,
        **options: Unpack[StreamOptions],
    ) -> PageStream[Record]:
        """Every record for the query ``params``, as the JSON object it came as."""
        stream: PageStream[Record] = self._open(params, True, filters_given, options)
        return stream

    async def partitions(
        self, count: int, params: dict[str, str], *, overlap: int = 0
    ) -> tuple[Checkpoint, ...]:
        """The crawl of the query ``params`` split (see :meth:`ListEndpoint.partitions`)."""
        return await self._endpoint.partitions(self._transport, params, count, overlap=overlap)

    async def mend(self, ends: Sequence[Checkpoint], *, raw: bool = False) -> Seams:
        """The :class:`Seams` between finished partitions, from their last checkpoints."""
        return await self._endpoint.mend(self._transport, ends, raw=raw)

    def _open(
        self, params: dict[str, str], raw: bool, filters_given: bool, options: StreamOptions
    ) -> PageStream[Any]:
        unknown = set(options) - _STREAM_OPTIONS
        if unknown:
            raise TypeError(f"unexpected stream options: {', '.join(sorted(unknown))}")
        concurrency = options.get("concurrency")
        return self._endpoint.stream(
            self._transport,
            params,
            concurrency=self._concurrency() if concurrency is None else concurrency,
            start_page=options.get("start_page", 1),
            stop_page=options.get("stop_page"),
            ordered=options.get("ordered", True),
            resume=options.get("resume"),
            raw=raw,
            registry=self._registry,
            filters_given=filters_given,
            verify=options.get("verify", False),
        )


_TYPED_PAGES: dict[tuple[str, type], TypedPages] = {}


def _typed_pages(key: str, model: type) -> TypedPages:
    """The decoder of the pages of a list: one per key and model, since building one makes
    msgspec compile their types again (every stream and every page() made its own)."""
    found = _TYPED_PAGES.get((key, model))
    if found is None:
        found = _TYPED_PAGES[key, model] = TypedPages(key, model, decoded_check(model))
    return found


class _Pages(Generic[T]):
    """The pages of one list for one query: downloads through the transport, a pure parser,
    and the conversion of one record to the model."""

    def __init__(
        self,
        endpoint: ListEndpoint[T],
        transport: Transport,
        params: dict[str, str],
        *,
        typed: bool,
    ):
        self._endpoint = endpoint
        self._transport = transport
        self._params = params
        self._check = endpoint.check
        self._plain = _PAGE_CHECKS.get(endpoint.check)
        model = endpoint.model
        self._model = model
        self._structure = structure_hook(model) if model is not None else None
        self._typed = _typed_pages(endpoint.key, model) if typed and model is not None else None

    async def download(self, number: int, observer: Observer | None) -> bytes:
        body: bytes = await self._transport.request(
            "GET",
            self._endpoint.path,
            params={**self._params, "page": str(number)},
            observer=observer,
            decode=json_like,
        )
        return body

    def parse(self, body: bytes) -> Page[Any]:
        with answer_to("GET", self._endpoint.path):
            data = self._typed.decode(body) if self._typed is not None else None
            if data is not None:
                return Page(items=tuple(data[self._endpoint.key]), meta=page_meta(data))
            try:
                data = loads(body)
            except JSONError as exc:
                raise ResponseValidationError(
                    f"the answer is not JSON we can read: {exc}"
                ) from None
            model = self._endpoint.model or dict
            key = self._endpoint.key
            found = items(
                data, (key,), self._check, model, exact=self._endpoint.exact_key, plain=self._plain
            )
            return Page(items=found, meta=page_meta(data))

    def convert(self, item: Record, position: int = 0) -> T:
        """One record of a page as the model (one it already is, as it is); an error names
        ``$.<key>[position]`` and below."""
        if item.__class__ is self._model:
            return item
        assert self._structure is not None
        try:
            return self._structure(item)
        except Exception as exc:
            model = self._endpoint.model
            assert model is not None
            error = validation_error(exc, model, f"$.{self._endpoint.key}[{position}]")
            error.method, error.url_path = "GET", self._endpoint.path
            raise error from None
