"""Every endpoint of the Uphance Customer API, as coroutines on ``client.customers``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

import orjson

from .. import _validate
from .._convert import body, structure, structure_hook, validation_error
from .._transport import Transport, path_of
from ..errors import ResponseValidationError
from ..models import Address, Contact, Customer, NewAddress, NewContact, NewCustomer
from ..pagination import Checkpoint, Observer, Page, PageStream, id_key
from ._shapes import answer_to, items, one_object, page_meta

__all__ = ["CustomerStream", "CustomersAPI"]

T = TypeVar("T")

STATUSES = ("active", "inactive", "all")
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-]{2,30}")

RawCustomer = dict[str, Any]


class CustomerStream(PageStream[T]):
    """Every customer of a listing, in page order: ``async for customer in stream``.

    Works as ``async with client.customers.stream() as stream: async for c in stream: ...``
    too, which stops all its requests as soon as the block is left.
    """


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


def _raw(item: Any) -> RawCustomer:
    """``item`` if it is a JSON object with an int or str ``id``, else the precise error."""
    if item.__class__ is not dict or item.get("id").__class__ not in (int, str):
        _CustomerPages._structure(item)
        raise TypeError(f"expected a customer id, got {item.get('id')!r}")
    return item


class _CustomerPages:
    """The pages of ``GET /customers`` for one set of filters (a :class:`PageSource`).

    Pages hold the JSON objects (each checked to be an object with an id); :meth:`convert`
    turns one into a :class:`Customer`.
    """

    _PATH = "/customers"
    _structure = staticmethod(structure_hook(Customer))

    def __init__(self, transport: Transport, params: dict[str, str]) -> None:
        self._transport = transport
        self._params = params

    def _query(self, number: int) -> dict[str, str]:
        return {**self._params, "page": str(number)}

    async def download(self, number: int, observer: Observer | None) -> bytes:
        body: bytes = await self._transport.request(
            "GET", self._PATH, params=self._query(number), observer=observer, raw=True
        )
        return body

    def parse(self, body: bytes) -> Page[RawCustomer]:
        with answer_to("GET", self._PATH):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ResponseValidationError("the answer is not JSON") from None
            return self._page(data)

    async def fetch(self, number: int, observer: Observer | None) -> Page[RawCustomer]:
        data = await self._transport.request(
            "GET", self._PATH, params=self._query(number), observer=observer
        )
        with answer_to("GET", self._PATH):
            return self._page(data)

    def _page(self, data: Any) -> Page[RawCustomer]:
        return Page(items=items(data, ("customers",), _raw, Customer), meta=page_meta(data))

    def convert(self, item: RawCustomer, position: int = 0) -> Customer:
        """One customer of a page; an error names ``$.customers[position]`` and below."""
        try:
            return self._structure(item)
        except Exception as exc:
            error = validation_error(exc, Customer, f"$.customers[{position}]")
            error.method, error.url_path = "GET", self._PATH
            raise error from None


class CustomersAPI:
    """The Customer API: ``client.customers``."""

    def __init__(
        self,
        transport: Transport,
        *,
        concurrency: Callable[[], int],
        on_stream: Callable[[PageStream[Any]], None],
    ) -> None:
        self._transport = transport
        self._concurrency = concurrency
        self._on_stream = on_stream

    async def _get(
        self, path: str, *, params: dict[str, str] | None = None, observer: Observer | None = None
    ) -> Any:
        return await self._transport.request("GET", path, params=params, observer=observer)

    async def page(
        self, page: int = 1, *, status: str | None = None, agent_contact: str | None = None
    ) -> Page[Customer]:
        """One page of ``GET /customers``.

        ``status`` is ``"active"`` (the API's default), ``"inactive"`` or ``"all"``;
        ``agent_contact`` (an agent's e-mail or phone) keeps only that agent's customers.
        """
        pages = _CustomerPages(self._transport, query_filters(status, agent_contact))
        found = await pages.fetch(_validate.positive_int("page", page), None)
        customers = tuple(map(pages.convert, found.items, range(len(found.items))))
        return Page(items=customers, meta=found.meta)

    @overload
    def stream(
        self,
        status: str | None = ...,
        agent_contact: str | None = ...,
        *,
        concurrency: int | None = ...,
        start_page: int = ...,
        ordered: bool = ...,
        resume: Checkpoint | None = ...,
        raw: Literal[False] = ...,
    ) -> CustomerStream[Customer]: ...

    @overload
    def stream(
        self,
        status: str | None = ...,
        agent_contact: str | None = ...,
        *,
        concurrency: int | None = ...,
        start_page: int = ...,
        ordered: bool = ...,
        resume: Checkpoint | None = ...,
        raw: Literal[True],
    ) -> CustomerStream[RawCustomer]: ...

    def stream(
        self,
        status: str | None = None,
        agent_contact: str | None = None,
        *,
        concurrency: int | None = None,
        start_page: int = 1,
        ordered: bool = True,
        resume: Checkpoint | None = None,
        raw: bool = False,
    ) -> CustomerStream[Customer] | CustomerStream[RawCustomer]:
        """Every customer of ``GET /customers``, fetching pages concurrently, in page order.

        ``concurrency`` pages are requested at once (the client's default when ``None``), always
        within the client's limiter. ``ordered=False`` hands out each page as soon as it arrives.
        ``resume`` continues from a :class:`~uphance_async.pagination.Checkpoint` (the filters
        come from it). ``raw=True`` yields the plain JSON dicts, for exports that re-serialise.
        """
        params = query_filters(status, agent_contact)
        first = start_page  # checked by the stream
        yielded = 0
        if resume is not None:
            if not isinstance(resume, Checkpoint):
                raise TypeError(f"resume must be a Checkpoint, not {type(resume).__name__}")
            if (status is not None or agent_contact is not None) and params != resume.params:
                raise ValueError("the filters given differ from those of the checkpoint")
            params, first, yielded = dict(resume.params), resume.next_page, resume.items_yielded
        limit = self._concurrency() if concurrency is None else concurrency
        pages = _CustomerPages(self._transport, params)
        return CustomerStream(
            pages,
            key=id_key,
            convert=None if raw else pages.convert,
            concurrency=limit,
            start_page=first,
            ordered=ordered,
            params=params,
            items_yielded=yielded,
            on_start=self._on_stream,
        )

    async def get(self, customer_id: int) -> Customer:
        """``GET /customers/{id}``: one customer; :class:`NotFoundError` if there is none."""
        path = path_of("customers", _validate.customer_id(customer_id))
        return self._one(await self._get(path), ("customer",), Customer, "GET", path)

    async def get_by_email(self, email: str) -> Customer:
        """``GET /customers/{email}``: the customer one of whose contacts has this e-mail."""
        path = path_of("customers", _validate.email(email))
        return self._one(await self._get(path), ("customer", "customers"), Customer, "GET", path)

    async def contacts(self, customer_id: int) -> tuple[Contact, ...]:
        """``GET /customers/{id}/contacts``: the customer's people."""
        path = path_of("customers", _validate.customer_id(customer_id), "contacts")
        return await self._list(path, ("contacts", "people"), Contact)

    async def addresses(self, customer_id: int) -> tuple[Address, ...]:
        """``GET /customers/{id}/addresses``: the customer's addresses."""
        path = path_of("customers", _validate.customer_id(customer_id), "addresses")
        return await self._list(path, ("addresses",), Address)

    async def create(self, customer: NewCustomer) -> Customer:
        """``POST /customers``: create a customer; the server's record of it."""
        return await self._post(("customers",), customer, NewCustomer, ("customer",), Customer)

    async def create_contact(self, customer_id: int, contact: NewContact) -> Contact:
        """``POST /customers/{id}/create_contact``: add a contact person to a customer."""
        segments = ("customers", _validate.customer_id(customer_id), "create_contact")
        return await self._post(segments, contact, NewContact, ("contact", "person"), Contact)

    async def create_address(self, customer_id: int, address: NewAddress) -> Address:
        """``POST /customers/{id}/create_address``: add an address to a customer."""
        segments = ("customers", _validate.customer_id(customer_id), "create_address")
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
