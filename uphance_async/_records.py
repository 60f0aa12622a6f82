"""A customer as one line of an export: JSON as it came, or a flat CSV row of the fields a
spreadsheet wants (lists joined or counted). What cannot be written is named."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, Literal

from ._json import dumps
from .errors import RecordEncodingError

__all__ = ["CSV_COLUMNS", "Format", "csv_row", "encode", "file_header"]

Format = Literal["jsonl", "csv"]

CSV_COLUMNS = (
    "id",
    "name",
    "company_type",
    "customer_type",
    "country",
    "city",
    "vat_number",
    "channel_id",
    "channel_name",
    "currency",
    "notes",
    "reference",
    "orders_count",
    "last_order_id",
    "last_order_confirmed_at",
    "last_order_status",
    "last_order_fulfillment_status",
    "last_order_financial_status",
    "outstanding_amounts",
    "purchase_amounts",
    "invoices_count",
    "people_count",
    "addresses_count",
    "agents",
    "emails",
)
"""CSV columns: the customer's own fields, its last order's, and its lists flattened (see
``csv_row``)."""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _list(record: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = record.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _joined(items: Iterable[str]) -> str:
    return "; ".join(item for item in items if item)


def csv_row(record: dict[str, Any]) -> list[str]:
    """One customer as CSV cells in :data:`CSV_COLUMNS` order.

    Amounts are joined as ``"355.18 USD; 12.00 EUR"`` (purchases with their quantity in
    brackets), agents by name, contacts' e-mails by ``"; "``; invoices, people and addresses
    are counted.
    """
    order = record.get("last_order") if isinstance(record.get("last_order"), dict) else {}
    assert isinstance(order, dict)
    own = [_text(record.get(column)) for column in CSV_COLUMNS[:13]]
    return [
        *own,
        _text(order.get("id")),
        _text(order.get("confirmed_at")),
        _text(order.get("status")),
        _text(order.get("fulfillment_status")),
        _text(order.get("financial_status")),
        _joined(
            f"{_text(a.get('amount'))} {_text(a.get('currency'))}".strip()
            for a in _list(record, "outstanding_amounts")
        ),
        _joined(
            f"{_text(a.get('amount'))} {_text(a.get('currency'))} ({_text(a.get('quantity'))})"
            for a in _list(record, "purchase_amounts")
        ),
        str(len(_list(record, "invoices"))),
        str(len(_list(record, "people"))),
        str(len(_list(record, "addresses"))),
        _joined(_text(agent.get("name")) for agent in _list(record, "agents")),
        _joined(_text(person.get("email")) for person in _list(record, "people")),
    ]


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()


def encode(record: dict[str, Any], form: Format) -> bytes:
    """One customer as one line of output, newline included; what cannot be written as JSON
    (nested deeper than the interpreter's recursion limit) raises
    :class:`~uphance_async.errors.RecordEncodingError`.
    """
    if form == "csv":
        return _csv_line(csv_row(record))
    try:
        return dumps(record) + b"\n"
    except (RecursionError, TypeError, ValueError) as exc:
        where, why = _unwritable(record, exc)
        raise RecordEncodingError(
            f"customer {record.get('id')!r} cannot be written as JSON at {where} ({why}); "
            "the export stopped before it and --resume will stop there again: export with "
            "--format csv, or ask Uphance to fix the record",
            record_id=record.get("id"),
            json_path=where,
        ) from None


_SHOWN_STEPS = 6


def _unwritable(record: Any, error: BaseException) -> tuple[str, str]:
    """Where in ``record`` it cannot be encoded, and why: for a record too deep, its deepest
    place, found without recursion (the record is what is too deep for recursion)."""
    if not isinstance(error, RecursionError):
        return "$", str(error)[:200]
    deepest: list[str] = []
    stack: list[tuple[Any, list[str]]] = [(record, [])]
    while stack:
        value, steps = stack.pop()
        if len(steps) > len(deepest):
            deepest = steps
        if isinstance(value, dict):
            stack.extend((item, [*steps, f".{key}"]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*steps, f"[{n}]"]) for n, item in enumerate(value))
    shown = "".join(deepest[:_SHOWN_STEPS]) + ("..." if len(deepest) > _SHOWN_STEPS else "")
    return f"${shown}", f"nested {len(deepest)} levels deep"


def file_header(form: Format) -> bytes:
    """What a file of ``form`` starts with: the CSV header line, or nothing."""
    return _csv_line(list(CSV_COLUMNS)) if form == "csv" else b""
