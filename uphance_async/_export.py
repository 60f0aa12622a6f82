"""Resumable exports of every customer to JSON lines or CSV.

The output is appended one whole record at a time. After each page is fully written the file is
flushed to disk and a checkpoint file beside it (``<output>.checkpoint``) records the stream's
checkpoint and the output's length at that moment; a resumed export first cuts the output back
to that length, so a crash never leaves a half-written or repeated record behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from ._convert import converter
from ._files import write_atomically
from .client import UphanceClient
from .pagination import Checkpoint, StreamStats
from .resources.customers import query_filters

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


class ExportError(Exception):
    """The export cannot start as asked (a usage problem, not an API one)."""


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
    """One customer as one line of output, newline included."""
    if form == "csv":
        return _csv_line(csv_row(record))
    return orjson.dumps(record) + b"\n"


def checkpoint_path(output: Path) -> Path:
    """Where the checkpoint of an export to ``output`` is kept."""
    return output.with_name(output.name + ".checkpoint")


def _load_checkpoint(path: Path, form: Format, params: dict[str, str]) -> tuple[Checkpoint, int]:
    try:
        saved = json.loads(path.read_text())
        checkpoint = converter.structure(saved["checkpoint"], Checkpoint)
        offset = int(saved["offset"])
        saved_form = saved["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"cannot read the checkpoint {path}: {exc}") from None
    if saved_form != form:
        raise ExportError(f"the checkpoint is for --format {saved_form}, not {form}")
    if checkpoint.params != params:
        raise ExportError("the checkpoint was made with other filters (--status, --agent-contact)")
    return checkpoint, offset


async def export(
    client: UphanceClient,
    output: Path | None,
    *,
    form: Format = "jsonl",
    status: str | None = None,
    agent_contact: str | None = None,
    resume: bool = False,
    concurrency: int | None = None,
    progress: Callable[[StreamStats], None] | None = None,
    stdout: IO[bytes] | None = None,
) -> tuple[StreamStats, bool]:
    """Stream every customer into ``output`` (``None``: ``stdout``); (stats, resumed).

    With ``resume`` and a checkpoint beside ``output``, carries on where the last run stopped.
    """
    params = query_filters(status, agent_contact)
    start: Checkpoint | None = None
    offset = 0
    marker = checkpoint_path(output) if output is not None else None
    if resume:
        if marker is None:
            raise ExportError("--resume needs --output FILE (not standard output)")
        if marker.exists():
            start, offset = _load_checkpoint(marker, form, params)
    stream = client.customers.stream(
        status, agent_contact, concurrency=concurrency, resume=start, raw=True
    )
    sink = _open_output(output, offset) if output is not None else stdout
    if sink is None:
        raise ExportError("no output given")
    try:
        if offset == 0 and form == "csv":
            sink.write(_csv_line(list(CSV_COLUMNS)))
        done_before = stream.checkpoint.next_page
        async with stream:
            async for record in stream:
                if marker is not None and stream.checkpoint.next_page != done_before:
                    # The record just received opens a new page: every earlier page is written.
                    done_before = stream.checkpoint.next_page
                    _save(sink, marker, form, stream.checkpoint)
                sink.write(encode(record, form))
                if progress is not None:
                    progress(stream.stats)
        sink.flush()
    finally:
        if sink is not stdout:
            sink.close()
    if marker is not None and marker.exists():
        marker.unlink()
    return stream.stats, start is not None


def _open_output(output: Path, offset: int) -> IO[bytes]:
    """``output`` for appending, cut back to ``offset`` bytes (what the checkpoint covers).

    Writes go straight to the local file: they are short, and the export is what this
    process's event loop is for.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    sink = open(output, "ab")  # noqa: SIM115 - closed by export()
    sink.truncate(offset)
    return sink


def _save(sink: IO[bytes], marker: Path, form: Format, checkpoint: Checkpoint) -> None:
    sink.flush()
    os.fsync(sink.fileno())
    state = {"format": form, "offset": sink.tell(), "checkpoint": converter.unstructure(checkpoint)}
    write_atomically(marker, json.dumps(state).encode())
