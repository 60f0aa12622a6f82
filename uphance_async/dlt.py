"""Uphance as a dlt source: load customers (and other lists) into any warehouse dlt reaches.

``pip install "uphance-async[dlt]"``, then::

    import dlt
    from uphance_async.dlt import uphance_source

    pipeline = dlt.pipeline("uphance", destination="duckdb", dataset_name="uphance")
    pipeline.run(uphance_source(token="YOUR_TOKEN"))

The ``customers`` resource merges on ``id`` (a re-run updates rows in place, never duplicates
them); its nested lists (people, addresses, agents, invoices, amounts) become child tables, and
every field of the ``Customer`` model is declared, so a column that is null on every record (a
``last_order`` no customer has yet) still exists. Credentials may come from dlt's config as well
(``SOURCES__UPHANCE__TOKEN``, or ``[sources.uphance]`` in ``.dlt/secrets.toml``). Records are
streamed raw (no model is built only to be thrown away), in batches.

``resources=("customers", "invoices", ...)`` adds other Uphance lists as raw resources, loaded
incrementally on ``id`` through ``since_id``: a re-run fetches only new records.
"""

from __future__ import annotations

import datetime
import decimal
import typing
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import attrs
import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from ._fastpath import unwrap_optional
from ._retry import RetryPolicy
from .client import DEFAULT_BASE_URL, DEFAULT_CONCURRENCY, UphanceClient
from .models import Customer

__all__ = ["LISTS", "uphance_source"]

LISTS: dict[str, str] = {
    "invoices": "/invoices",
    "credit_notes": "/credit_notes",
    "pick_tickets": "/pick_tickets",
    "sales_orders": "/sales_orders",
}
"""The other lists ``resources=`` can name: their path (records under the same key)."""

_BATCH = 1000
_TYPES: dict[Any, str] = {
    str: "text",
    int: "bigint",
    bool: "bool",
    decimal.Decimal: "decimal",
    datetime.datetime: "timestamp",
}


def _object_fields(model: type) -> frozenset[str]:
    """The fields of ``model`` that hold one other model (``last_order``)."""
    hints = typing.get_type_hints(model)
    return frozenset(name for name, hint in hints.items() if attrs.has(unwrap_optional(hint)))


_CUSTOMER_OBJECTS = _object_fields(Customer)


def _tidy(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without a null object field: dlt flattens an object into columns (declared
    below), and would otherwise also want a column for the null itself."""
    for name in _CUSTOMER_OBJECTS:
        if name in record and record[name] is None:
            del record[name]
    return record


def columns_of(model: type, prefix: str = "") -> dict[str, TColumnSchema]:
    """dlt column hints for every scalar field of ``model`` and of the models it holds
    alone (``last_order`` becomes ``last_order__id``...), all nullable but ``id``."""
    columns: dict[str, TColumnSchema] = {}
    hints = typing.get_type_hints(model)
    for field in attrs.fields(model):
        kind = unwrap_optional(hints[field.name])
        name = prefix + field.name
        if kind in _TYPES:
            columns[name] = {"data_type": _TYPES[kind], "nullable": name != "id"}  # type: ignore[typeddict-item]
        elif attrs.has(kind):
            columns.update(columns_of(kind, f"{name}__"))
    return columns


@dlt.source(name="uphance", section="uphance")
def uphance_source(
    *,
    token: TSecretStrValue | None = None,
    email: str | None = None,
    password: TSecretStrValue | None = None,
    organisation_id: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    status: str = "all",
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit: float | None = None,
    resources: Sequence[str] = ("customers",),
    timeout: float = 60.0,
    max_attempts: int = 5,
    on_batch: Callable[[str, int], None] | None = None,
) -> list[DltResource]:
    """The Uphance source: a ``customers`` resource, and the lists ``resources`` names.

    ``on_batch(resource, rows_so_far)`` is called as batches are extracted (for progress).
    """
    unknown = set(resources) - {"customers", *LISTS}
    if unknown:
        raise ValueError(
            f"unknown resources {sorted(unknown)}; known: customers, {', '.join(LISTS)}"
        )

    def connect() -> UphanceClient:
        # Made inside each resource's generator: dlt runs them on a loop of its own.
        options: dict[str, Any] = {
            "base_url": base_url,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "timeout": timeout,
            "retry": RetryPolicy(max_attempts=max_attempts),
        }
        if token is not None:
            return UphanceClient(token=token, **options)
        return UphanceClient(
            email=email, password=password, organisation_id=organisation_id, **options
        )

    @dlt.resource(
        name="customers",
        primary_key="id",
        write_disposition="merge",
        columns=columns_of(Customer),
    )
    async def customers() -> AsyncIterator[list[dict[str, Any]]]:
        async with connect() as client:
            async for batch in _batches("customers", client.customers.stream(status, raw=True)):
                yield [_tidy(record) for record in batch]

    def listing(name: str) -> DltResource:
        @dlt.resource(name=name, primary_key="id", write_disposition="merge")
        async def records(
            # dlt reads the cursor from the default, so it is built in the signature.
            since: dlt.sources.incremental[int] = dlt.sources.incremental(  # noqa: B008
                "id", initial_value=0
            ),
        ) -> AsyncIterator[list[dict[str, Any]]]:
            async with connect() as client:
                stream = client.paginate(
                    LISTS[name], key=name, params={"since_id": since.last_value or 0}
                )
                async for batch in _batches(name, stream):
                    yield batch

        return records

    async def _batches(
        name: str, stream: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        rows = 0
        async for record in stream:
            batch.append(record)
            if len(batch) >= _BATCH:
                rows += len(batch)
                yield batch
                batch = []
                if on_batch is not None:
                    on_batch(name, rows)
        if batch:
            yield batch
            if on_batch is not None:
                on_batch(name, rows + len(batch))

    return [customers if name == "customers" else listing(name) for name in resources]
