"""Resumable exports: whole records only, exactly once across a crash and a resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from uphance_async import RetryPolicy, UphanceClient
from uphance_async._export import CSV_COLUMNS, ExportError, checkpoint_path, csv_row, export
from uphance_async.errors import ServerError
from uphance_async.testing import FakeUphance


def fail_after(requests: int):  # type: ignore[no-untyped-def]
    def hook(server: FakeUphance) -> None:
        if len(server.requests) >= requests:
            server.fault_rate, server.faults = 1.0, ("503",)

    return hook


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as sink:
        sink.write(data)


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_a_crashed_export_resumes_exactly(tmp_path: Path, form: str) -> None:
    output = tmp_path / f"customers.{form}"
    async with FakeUphance(customers=230, page_size=20, seed=6) as server:
        client = UphanceClient(
            token=server.token, base_url=server.url, retry=RetryPolicy(max_attempts=1)
        )
        async with client:
            server.on_request = fail_after(6)
            with pytest.raises(ServerError):
                await export(client, output, form=form, status="all")  # type: ignore[arg-type]
            marker = json.loads(checkpoint_path(output).read_text())
            assert marker["checkpoint"]["next_page"] > 1
            assert marker["offset"] <= output.stat().st_size
            append(output, b'{"id": 1, "half a rec')  # a crash in the middle of a write
            server.on_request = None
            server.fault_rate = 0.0
            stats, resumed = await export(
                client,
                output,
                form=form,
                status="all",
                resume=True,  # type: ignore[arg-type]
            )
    assert resumed
    assert stats.items_yielded == 230 - (marker["checkpoint"]["next_page"] - 1) * 20
    assert not checkpoint_path(output).exists()
    if form == "jsonl":
        ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    else:
        rows = list(csv.reader(output.read_text().splitlines()))
        assert rows[0] == list(CSV_COLUMNS)
        ids = [int(row[0]) for row in rows[1:]]
    assert ids == server.ids("all")


async def test_resume_refuses_other_filters_or_format(server: FakeUphance, tmp_path: Path) -> None:
    output = tmp_path / "c.jsonl"
    checkpoint_path(output).write_text(
        json.dumps({"format": "jsonl", "offset": 0, "checkpoint": {"next_page": 2, "params": {}}})
    )
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        with pytest.raises(ExportError, match="filters"):
            await export(client, output, status="all", resume=True)
        with pytest.raises(ExportError, match="format"):
            await export(client, output, form="csv", resume=True)
        with pytest.raises(ExportError, match="--output"):
            await export(client, None, resume=True)
        checkpoint_path(output).write_text("{broken")
        with pytest.raises(ExportError, match="cannot read"):
            await export(client, output, resume=True)


async def test_resume_without_a_checkpoint_starts_over(server: FakeUphance, tmp_path: Path) -> None:
    output = tmp_path / "c.jsonl"
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        stats, resumed = await export(client, output, resume=True)
    assert not resumed
    assert stats.items_yielded == len(server.ids())
    assert len(output.read_text().splitlines()) == len(server.ids())


def test_csv_rows_flatten_lists() -> None:
    row = dict(
        zip(
            CSV_COLUMNS,
            csv_row(
                {
                    "id": 5,
                    "name": "Acme, Inc.",
                    "last_order": {"id": 9, "status": "confirmed"},
                    "outstanding_amounts": [
                        {"amount": "355.18", "currency": "USD"},
                        {"amount": "1.00", "currency": "EUR"},
                    ],
                    "purchase_amounts": [{"amount": "10", "quantity": 3, "currency": "USD"}],
                    "invoices": [{"id": 1}, {"id": 2}],
                    "people": [{"email": "a@x.com"}, {"email": None}, {"email": "b@x.com"}],
                    "agents": [{"name": "Ann"}],
                    "notes": None,
                }
            ),
            strict=True,
        )
    )
    assert row["name"] == "Acme, Inc."
    assert row["notes"] == ""
    assert row["last_order_id"] == "9"
    assert row["outstanding_amounts"] == "355.18 USD; 1.00 EUR"
    assert row["purchase_amounts"] == "10 USD (3)"
    assert (row["invoices_count"], row["people_count"], row["addresses_count"]) == ("2", "3", "0")
    assert row["emails"] == "a@x.com; b@x.com"
    assert row["agents"] == "Ann"
