"""Uphance as a dlt source: load customers (and other lists) into any warehouse dlt reaches.

``pip install "uphance-async[dlt]"``, then::

    import dlt
    from uphance_async.dlt import uphance_source

    pipeline = dlt.pipeline("uphance", destination="duckdb", dataset_name="uphance_data")
    pipeline.run(uphance_source(token="YOUR_TOKEN", mirror=True))

Customers become typed tables built with Arrow, a page at a time: ``customers`` (one row a
customer, ``last_order`` flattened into ``last_order__*`` columns) and one table per nested list
(``customers__people``, ``customers__addresses``, ``customers__agents``, ``customers__invoices``,
``customers__outstanding_amounts``, ``customers__purchase_amounts``), each row carrying its
``customer_id`` and ``position`` in the list. Money is DECIMAL(38, 9) (more decimal places
round to 9), timestamps are UTC timestamps, ids are BIGINT, in every table; every field of the
models is a column, even one that is null on every record. A value no column can hold raises
:class:`~uphance_async.errors.RecordEncodingError` naming the customer and the field.

``mirror=True`` replaces every customer table with the crawl's result, so the tables hold exactly
the tenant's customers (deleted ones gone, with their rows in the child tables); only a crawl
that completed replaces anything, so one that ends in an error (a ``DriftError`` included)
leaves the tables as they were. Set dlt's ``replace_strategy`` to ``insert-from-staging`` (as
``uphance-async customers load`` does) so that readers never see a table empty. Without
``mirror`` the tables are merged: ``customers`` on ``id``, the child tables on ``customer_id``
(a changed customer's rows are replaced); deleted customers stay.

Credentials may come from dlt's config as well (``SOURCES__UPHANCE__TOKEN``, or
``[sources.uphance]`` in ``.dlt/secrets.toml``). ``resources=("customers", "invoices", ...)``
adds other Uphance lists as raw resources, merged on ``id`` and loaded incrementally through
``since_id``: a re-run fetches only new records.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import operator
import shutil
import signal
import threading
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import dlt
import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from ._fastpath import unwrap_optional
from ._retry import RetryPolicy
from .client import DEFAULT_BASE_URL, DEFAULT_CONCURRENCY, UphanceClient
from .errors import RecordEncodingError
from .models import Customer
from .pagination import PageStream, StreamStats

__all__ = ["LISTS", "TABLES", "uphance_source"]

T = TypeVar("T")

LISTS: dict[str, str] = {
    "invoices": "/invoices",
    "credit_notes": "/credit_notes",
    "pick_tickets": "/pick_tickets",
    "sales_orders": "/sales_orders",
}
"""The other lists ``resources=`` can name: their path (records under the same key)."""

_BATCH = 1000
_PRECISION, _SCALE = 38, 9
# Python type of a model field: (dlt data type, Arrow type).
_TYPES: dict[Any, tuple[str, pa.DataType]] = {
    str: ("text", pa.string()),
    int: ("bigint", pa.int64()),
    bool: ("bool", pa.bool_()),
    decimal.Decimal: ("decimal", pa.decimal128(_PRECISION, _SCALE)),
    datetime.datetime: ("timestamp", pa.timestamp("us", tz="UTC")),
}


@attrs.frozen
class _Column:
    name: str
    kind: type
    get: Callable[[Any], Any]
    nullable: bool = True

    def hint(self) -> TColumnSchema:
        data_type, _ = _TYPES[self.kind]
        hint: dict[str, Any] = {"data_type": data_type, "nullable": self.nullable}
        if self.kind is decimal.Decimal:
            hint["precision"], hint["scale"] = _PRECISION, _SCALE
        if self.kind is datetime.datetime:
            hint["timezone"] = True
        return typing.cast(TColumnSchema, hint)


def _through(outer: Callable[[Any], Any], inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        held = outer(value)
        return None if held is None else inner(held)

    return get


def _columns(model: type, prefix: str = "", get: Callable[[Any], Any] | None = None) -> list[Any]:
    """A column for every scalar field of ``model`` and of the models it holds alone
    (``last_order`` becomes ``last_order__id``...); only a top-level ``id`` is not nullable."""
    found: list[_Column] = []
    hints = typing.get_type_hints(model)
    for field in attrs.fields(model):
        kind = unwrap_optional(hints[field.name])
        name = prefix + field.name
        read: Callable[[Any], Any] = operator.attrgetter(field.name)
        if get is not None:
            read = _through(get, read)
        if kind in _TYPES:
            found.append(_Column(name, kind, read, nullable=name != "id"))
        elif attrs.has(kind):
            found.extend(_columns(kind, f"{name}__", read))
    return found


def _lists_of(model: type) -> dict[str, type]:
    """The fields of ``model`` that hold a tuple of models, and that model."""
    hints = typing.get_type_hints(model)
    held = {}
    for field in attrs.fields(model):
        kind = unwrap_optional(hints[field.name])
        if typing.get_origin(kind) is tuple and attrs.has(typing.get_args(kind)[0]):
            held[field.name] = typing.get_args(kind)[0]
    return held


@attrs.frozen
class _Table:
    """One warehouse table of customers: the customers themselves (``field`` None), or the
    items of one of their lists, keyed by ``customer_id`` and ``position``."""

    name: str
    field: str | None
    columns: tuple[_Column, ...]
    # The same nullability as the dlt hints: dlt warns about every table that differs.
    schema: pa.Schema = attrs.field(
        default=attrs.Factory(
            lambda table: pa.schema(
                pa.field(column.name, _TYPES[column.kind][1], nullable=column.nullable)
                for column in table.columns
            ),
            takes_self=True,
        )
    )

    def hints(self) -> dict[str, TColumnSchema]:
        return {column.name: column.hint() for column in self.columns}

    def arrow(self, customers: Sequence[Customer]) -> pa.Table:
        if self.field is None:
            rows: Sequence[Any] = customers
            places = [(customer.id, "$") for customer in customers]
            arrays = []
        else:
            owned = [
                (customer.id, position, item)
                for customer in customers
                for position, item in enumerate(getattr(customer, self.field))
            ]
            rows = [item for _, _, item in owned]
            places = [(owner, f"$.{self.field}[{position}]") for owner, position, _ in owned]
            arrays = [
                pa.array([owner for owner, _, _ in owned], pa.int64()),
                pa.array([position for _, position, _ in owned], pa.int64()),
            ]
        offset = len(arrays)
        for column in self.columns[offset:]:
            values = list(map(column.get, rows))
            try:
                arrays.append(pa.array(values, _TYPES[column.kind][1]))
            except (pa.ArrowException, OverflowError):
                arrays.append(_fitted(values, column, places))
        return pa.Table.from_arrays(arrays, schema=self.schema)


_QUANTUM = decimal.Decimal(1).scaleb(-_SCALE)
_LARGEST = decimal.Decimal(10) ** (_PRECISION - _SCALE)


def _fitted(values: list[Any], column: _Column, places: list[tuple[int, str]]) -> pa.Array:
    """``values`` as the column's Arrow array when some do not fit it as they are: an amount
    with more than 9 decimal places is rounded to 9 (half to even, as DECIMAL(38, 9) keeps
    it); anything else that does not fit raises :class:`RecordEncodingError` naming it."""
    kind = _TYPES[column.kind][1]
    fitted = []
    for value, (customer, where) in zip(values, places, strict=True):
        if isinstance(value, decimal.Decimal) and abs(value) < _LARGEST:
            value = value.quantize(_QUANTUM)
        try:
            pa.array([value], kind)
        except (pa.ArrowException, OverflowError):
            path = f"{where}.{column.name.replace('__', '.')}"
            raise RecordEncodingError(
                f"customer {customer} cannot be loaded: {value!r} at {path} does not fit the "
                f"warehouse column ({_TYPES[column.kind][0]}); ask Uphance to fix the record",
                record_id=customer,
                json_path=path,
            ) from None
        fitted.append(value)
    return pa.array(fitted, kind)


def _tables() -> tuple[_Table, ...]:
    keys = [
        _Column("customer_id", int, operator.itemgetter(0), nullable=False),
        _Column("position", int, operator.itemgetter(1), nullable=False),
    ]
    found = [_Table("customers", None, tuple(_columns(Customer)))]
    for field, model in _lists_of(Customer).items():
        # A contact's own customer_id is its owner's id (or null): the owner's is the key.
        own = [
            attrs.evolve(column, nullable=True)
            for column in _columns(model)
            if column.name not in {"customer_id", "position"}
        ]
        found.append(_Table(f"customers__{field}", field, (*keys, *own)))
    return tuple(found)


_TABLES = _tables()
TABLES: tuple[str, ...] = tuple(table.name for table in _TABLES)
"""The tables the ``customers`` resources load, parent first."""


def columns_of(model: type) -> dict[str, TColumnSchema]:
    """dlt column hints for every scalar field of ``model`` and of the models it holds alone."""
    return {column.name: column.hint() for column in _columns(model)}


@attrs.frozen
class _Batch:
    """Customers handed from the crawl to the table builders (never loaded itself)."""

    customers: list[Customer]


@dlt.source(name="uphance", section="uphance")
def uphance_source(
    *,
    token: TSecretStrValue | None = None,
    email: str | None = None,
    password: TSecretStrValue | None = None,
    organisation_id: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    status: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate_limit: float | None = None,
    resources: Sequence[str] = ("customers",),
    timeout: float = 60.0,
    max_attempts: int = 5,
    mirror: bool = False,
    on_batch: Callable[[str, int], None] | None = None,
    on_stats: Callable[[StreamStats], None] | None = None,
) -> list[DltResource]:
    """The Uphance source: the customer tables, and the lists ``resources`` names.

    ``status`` filters customers as ``customers.stream()`` does (``None``: the API's default,
    active customers). ``mirror=True`` replaces the customer tables with each complete crawl
    (see the module's documentation); otherwise they are merged. ``organisation_id`` selects
    the organisation, with a token as with a sign-in. ``on_batch(resource, rows_so_far)`` is
    called as batches are extracted, and ``on_stats(stats)`` with the customer stream's
    :class:`~uphance_async.pagination.StreamStats` (for progress with totals).
    """
    unknown = set(resources) - {"customers", *LISTS}
    if unknown:
        raise ValueError(
            f"unknown resources {sorted(unknown)}; known: customers, {', '.join(LISTS)}"
        )

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[UphanceClient]:
        # Made inside each resource's generator: dlt runs them on a loop of its own.
        options: dict[str, Any] = {
            "base_url": base_url,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "timeout": timeout,
            "retry": RetryPolicy(max_attempts=max_attempts),
        }
        if token is not None:
            client = UphanceClient(token=token, **options)
        else:
            client = UphanceClient(
                email=email, password=password, organisation_id=organisation_id, **options
            )
        async with client:
            # A sign-in selects its organisation itself; with a token it is selected once open.
            if token is not None and organisation_id is not None:
                await client.set_organisation(organisation_id)
            yield client

    async def batched(name: str, stream: PageStream[T], *, last: bool) -> AsyncIterator[list[T]]:
        """The records of ``stream`` a thousand at a time, progress told after each batch;
        with ``last``, a final batch even when it is empty."""
        batch: list[T] = []
        async with stream:
            async for record in stream:
                batch.append(record)
                if len(batch) >= _BATCH:
                    yield batch
                    batch = []
                    told(name, stream.stats)
            if batch or last:
                yield batch
                told(name, stream.stats)

    def told(name: str, stats: StreamStats) -> None:
        if on_batch is not None:
            on_batch(name, stats.items_yielded)
        if on_stats is not None and name == "customers":
            on_stats(stats)

    @dlt.resource(name="uphance_customer_batches", selected=False)
    async def batches() -> AsyncIterator[_Batch]:
        async with connect() as client:
            # The last batch even when empty: a mirror of an empty list empties the tables.
            async for batch in batched("customers", client.customers.stream(status), last=True):
                yield _Batch(batch)

    def table_resource(table: _Table) -> DltResource:
        keys: dict[str, Any] = (
            {"primary_key": "id"}
            if table.field is None
            else {"primary_key": ("customer_id", "position"), "merge_key": "customer_id"}
        )

        def rows(batch: _Batch) -> Iterator[pa.Table]:
            yield table.arrow(batch.customers)

        return dlt.transformer(
            rows,
            data_from=batches,
            name=table.name,
            write_disposition="replace" if mirror else "merge",
            columns=table.hints(),
            **keys,
        )

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
                async for batch in batched(name, stream, last=False):
                    yield batch

        return records

    found: list[DltResource] = []
    for name in resources:
        if name == "customers":
            found.extend(map(table_resource, _TABLES))
        else:
            found.append(listing(name))
    return found


def _load_mirror(
    source: Any,
    *,
    dataset: str,
    database: Path | None,
    destination: str = "duckdb",
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Load ``source`` (``uphance_source(mirror=True)``) phase by phase, as ``uphance-async
    customers load`` does; the rows loaded per table.

    Into the DuckDB file ``database`` when given, dlt's state then kept beside it (so two
    databases never share state) and tables replaced through a staging dataset (readers see
    the old tables or the new ones, never an empty one); else into the dlt ``destination``.
    A killed run's pending packages are dropped first: they hold an older crawl. A failed or
    interrupted first load leaves no database behind. ``on_phase`` is told when normalize and
    load begin.
    """
    tell = on_phase or (lambda text: None)
    target: Any = destination
    pipelines_dir = None
    if database is not None:
        target = dlt.destinations.duckdb(str(database), replace_strategy="insert-from-staging")
        pipelines_dir = database.with_name(f".{database.name}.dlt")
    new = database is not None and not database.exists()
    try:
        with _quiet_after_ctrl_c():
            # dlt types pipelines_dir as str, and takes None for its own default folder.
            make: Any = dlt.pipeline
            pipeline = make(
                pipeline_name=f"uphance_{dataset}",
                destination=target,
                dataset_name=dataset,
                pipelines_dir=None if pipelines_dir is None else str(pipelines_dir),
            )
            if pipeline.has_pending_data:
                # dlt 1.30 renamed the call.
                abort = getattr(pipeline, "abort_packages", None) or pipeline.drop_pending_packages
                abort()
            pipeline.extract(source)
            tell("normalize...")
            pipeline.normalize()
            rows = _rows_per_table(pipeline)
            tell(f"load: {sum(rows.values()):,} rows into {len(rows)} tables...")
            pipeline.load()
    except BaseException:
        if new and database is not None and pipelines_dir is not None:
            for leftover in (database, database.with_name(database.name + ".wal")):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(pipelines_dir, ignore_errors=True)
        raise
    return rows


def _rows_per_table(pipeline: Any) -> dict[str, int]:
    """The rows the last normalize wrote for each of our tables (dlt's own left out)."""
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    counts = dict(normalized.row_counts) if normalized is not None else {}
    return {table: count for table, count in counts.items() if not table.startswith("_")}


@contextlib.contextmanager
def _quiet_after_ctrl_c() -> Iterator[None]:
    """Ctrl-C as one line: dlt runs the crawl on an event loop of its own, and when Ctrl-C
    stops it mid-request that loop logs every async generator it then cannot close (dozens of
    tracebacks on stderr). Once Ctrl-C is pressed, asyncio's log says nothing more."""
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(signum: int, frame: Any) -> None:
        pressed.set()
        signal.default_int_handler(signum, frame)

    def before_ctrl_c(record: logging.LogRecord) -> bool:
        return not pressed.is_set()

    # Only where Ctrl-C raises KeyboardInterrupt as usual: a handler the user set stays.
    ours = previous is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, interrupt)
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addFilter(before_ctrl_c)
    try:
        yield
    finally:
        if not pressed.is_set():
            # After Ctrl-C it stays: the abandoned loop's tasks and sessions are logged again
            # when they are collected, up to the interpreter's exit.
            asyncio_log.removeFilter(before_ctrl_c)
        if ours:
            signal.signal(signal.SIGINT, previous)
