"""Every endpoint of the Uphance Customer API, as coroutines on ``client.customers``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, Unpack, overload

from .. import _validate
from .._convert import body, structure, structure_hook
from .._protocol import path_of
from .._transport import Transport
from ..models import Address, Contact, Customer, NewAddress, NewContact, NewCustomer
from ..pagination import Checkpoint, Page, PageStream, Seams, StreamRegistry
from ._lists import ListEndpoint, ListResource, StreamOptions, objects_with_ids, whole_page
from ._shapes import answer_to, items, one_object

__all__ = ["CustomerStream", "CustomersAPI"]

T = TypeVar("T")

STATUSES = ("active", "inactive", "all")
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-]{2,30}")

RawCustomer = dict[str, Any]


CustomerStream = PageStream
"""Every customer of a listing, in page order: ``async for customer in stream``, or inside
``async with client.customers.stream() as stream:``, which stops all its requests as soon as
the block is left (the engine's :class:`~uphance_async.pagination.PageStream`)."""


def query_filters(status: str | None, agent_contact: str | None) -> dict[str, str]:
    """The query parameters for the listing filters; ``ValueError`` for values not allowed."""
    params: dict[str, str] = {}
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)} or None, not {status!r}")
        params["by_status"] = status
    if agent_contact is not None:
        if not (
            _validate.is_email(agent_contact)
            or (isinstance(agent_contact, str) and _PHONE.fullmatch(agent_contact.strip()))
        ):
            raise ValueError(f"agent_contact must be an e-mail or a phone, not {agent_contact!r}")
        params["by_agents_contact"] = agent_contact.strip()
    return params


def _one_customer(customer_id: object) -> tuple[str, int]:
    """The path segments of one customer; ``ValueError`` unless the id is a positive int."""
    return "customers", _validate.positive_int("customer id", customer_id)


@whole_page(objects_with_ids)
def _customer_record(item: Any) -> RawCustomer:
    """``item`` if it is a JSON object with an int or str ``id``, else the precise error."""
    if item.__class__ is not dict or item.get("id").__class__ not in (int, str):
        structure_hook(Customer)(item)
        raise TypeError(f"expected a customer id, got {item.get('id')!r}")
    return item


CUSTOMERS = ListEndpoint("/customers", "customers", Customer, check=_customer_record)
"""``GET /customers``: the list every customer stream reads."""


class CustomersAPI:
    """The Customer API: ``client.customers``."""

    def __init__(
        self, transport: Transport, *, concurrency: Callable[[], int], registry: StreamRegistry
    ) -> None:
        self._transport = transport
        self._customers = ListResource(
            CUSTOMERS, transport, concurrency=concurrency, registry=registry
        )

    async def _get(self, path: str) -> Any:
        return await self._transport.request("GET", path)

    async def page(
        self, page: int = 1, *, status: str | None = None, agent_contact: str | None = None
    ) -> Page[Customer]:
        """One page of ``GET /customers``.

        ``status`` is ``"active"`` (the API's default), ``"inactive"`` or ``"all"``;
        ``agent_contact`` (an agent's e-mail or phone) keeps only that agent's customers.
        """
        return await self._customers.page(page, query_filters(status, agent_contact))

    @overload
    def stream(
        self,
        status: str | None = ...,
        agent_contact: str | None = ...,
        *,
        raw: Literal[False] = ...,
        **options: Unpack[StreamOptions],
    ) -> CustomerStream[Customer]: ...

    @overload
    def stream(
        self,
        status: str | None = ...,
        agent_contact: str | None = ...,
        *,
        raw: Literal[True],
        **options: Unpack[StreamOptions],
    ) -> CustomerStream[RawCustomer]: ...

    def stream(
        self,
        status: str | None = None,
        agent_contact: str | None = None,
        *,
        raw: bool = False,
        **options: Unpack[StreamOptions],
    ) -> CustomerStream[Customer] | CustomerStream[RawCustomer]:
        """Every customer of ``GET /customers``, fetching pages concurrently, in page order.

        ``concurrency`` pages are requested at once (the client's default when ``None``), always
        within the client's limiter. ``ordered=False`` hands out each page as soon as it arrives.
        ``start_page`` and ``stop_page`` (inclusive) bound the pages read, for partitioned
        crawls. ``resume`` continues from a :class:`~uphance_async.pagination.Checkpoint` (the
        filters and ``stop_page`` come from it). ``raw=True`` yields the plain JSON dicts, for
        exports that re-serialise.

        Every customer that stays in the list from the start to the end is handed out exactly
        once, or the stream raises :class:`~uphance_async.errors.DriftError` (see the docs,
        "Exactness when the list changes"). ``verify=True`` then reads the whole list again,
        up to 3 times, until a pass finds nothing new while the count holds still: it also
        catches changes that keep the count, at the cost of at least one more full crawl.
        """
        params = query_filters(status, agent_contact)
        given = status is not None or agent_contact is not None
        if raw:
            return self._customers.raw(params, filters_given=given, **options)
        return self._customers.typed(params, filters_given=given, **options)

    async def partitions(
        self,
        count: int,
        *,
        status: str | None = None,
        agent_contact: str | None = None,
        overlap: int = 0,
    ) -> tuple[Checkpoint, ...]:
        """Split the crawl of ``GET /customers`` into at most ``count`` pieces of plain data.

        Reads page 1 to learn how many pages there are, and returns checkpoints whose page
        ranges are contiguous and cover page 1 to the end (the last one open-ended, so pages
        added during the crawl are read). Run each as ``stream(resume=checkpoint)``, in any
        process; ``uphance_async.converter`` turns them into JSON and back. ``overlap`` pages
        more for every range but the last catch customers that move back across a boundary
        when the list shrinks during the crawl (merge on ``id`` at the destination).
        """
        params = query_filters(status, agent_contact)
        return await self._customers.partitions(count, params, overlap=overlap)

    async def mend(self, ends: Sequence[Checkpoint], *, raw: bool = False) -> Seams:
        """Repair the boundaries between partitions once all of them have finished: ``ends``
        are their last checkpoints (``stream.checkpoint``, or ``export_customers(on_done=)``),
        in page order. Returns the customers no partition handed out because the list changed
        during the crawl (``missed``, as :class:`Customer` or raw dicts) and the ids two
        neighbours both handed out (``repeated``: keep one); raises
        :class:`~uphance_async.errors.DriftError` when that cannot be told exactly.
        """
        return await self._customers.mend(ends, raw=raw)

    async def get(self, customer_id: int) -> Customer:
        """``GET /customers/{id}``: one customer; :class:`NotFoundError` if there is none."""
        path = path_of(*_one_customer(customer_id))
        return self._one(await self._get(path), ("customer",), Customer, "GET", path)

    async def get_by_email(self, email: str) -> Customer:
        """``GET /customers/{email}``: the customer one of whose contacts has this e-mail."""
        path = path_of("customers", _validate.email(email))
        return self._one(await self._get(path), ("customer", "customers"), Customer, "GET", path)

    async def contacts(self, customer_id: int) -> tuple[Contact, ...]:
        """``GET /customers/{id}/contacts``: the customer's people."""
        path = path_of(*_one_customer(customer_id), "contacts")
        return await self._list(path, ("contacts", "people"), Contact)

    async def addresses(self, customer_id: int) -> tuple[Address, ...]:
        """``GET /customers/{id}/addresses``: the customer's addresses."""
        path = path_of(*_one_customer(customer_id), "addresses")
        return await self._list(path, ("addresses",), Address)

    async def create(self, customer: NewCustomer) -> Customer:
        """``POST /customers``: create a customer; the server's record of it."""
        return await self._post(("customers",), customer, NewCustomer, ("customer",), Customer)

    async def create_contact(self, customer_id: int, contact: NewContact) -> Contact:
        """``POST /customers/{id}/create_contact``: add a contact person to a customer."""
        segments = (*_one_customer(customer_id), "create_contact")
        return await self._post(segments, contact, NewContact, ("contact", "person"), Contact)

    async def create_address(self, customer_id: int, address: NewAddress) -> Address:
        """``POST /customers/{id}/create_address``: add an address to a customer."""
        segments = (*_one_customer(customer_id), "create_address")
        return await self._post(segments, address, NewAddress, ("address",), Address)

    async def _list(self, path: str, names: tuple[str, ...], cl: type[T]) -> tuple[T, ...]:
        hook = structure_hook(cl)
        data = await self._get(path)
        with answer_to("GET", path):
            return items(data, names, hook, cl)

    async def _post(
        self,
        segments: tuple[str | int, ...],
        payload: Any,
        kind: type,
        names: tuple[str, ...],
        cl: type[T],
    ) -> T:
        if not isinstance(payload, kind):
            raise TypeError(f"expected a {kind.__name__}, not {type(payload).__name__}")
        path = path_of(*segments)
        data = await self._transport.request("POST", path, json=body(payload))
        return self._one(data, names, cl, "POST", path)

    def _one(self, data: Any, names: tuple[str, ...], cl: type[T], method: str, path: str) -> T:
        with answer_to(method, path):
            return structure(one_object(data, names, cl.__name__, method, path), cl)
