"""Exports: whole records only, exactly once across a crash and a resume, never a good file lost."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from uphance_async import ExportError, OutputStateError, RetryPolicy, UphanceClient, _export
from uphance_async._export import checkpoint_path, export, lock_path, partial_path
from uphance_async._files import write_atomically
from uphance_async._records import CSV_COLUMNS, csv_row, encode
from uphance_async.errors import (
    APIConnectionError,
    AuthenticationError,
    RecordEncodingError,
    ResponseValidationError,
    ServerError,
)
from uphance_async.testing import FakeUphance

ONCE = RetryPolicy(max_attempts=1)


def fail_after(requests: int):  # type: ignore[no-untyped-def]
    def hook(server: FakeUphance) -> None:
        if len(server.requests) >= requests:
            server.fault_rate, server.faults = 1.0, ("503",)

    return hook


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as sink:
        sink.write(data)


def exported_ids(output: Path, form: str) -> list[int]:
    data = output.read_bytes()
    assert b"\0" not in data
    if form == "jsonl":
        return [json.loads(line)["id"] for line in data.decode().splitlines()]
    rows = list(csv.reader(data.decode().splitlines()))
    assert rows[0] == list(CSV_COLUMNS)
    return [int(row[0]) for row in rows[1:]]


async def interrupted_export(server: FakeUphance, output: Path, form: str = "jsonl") -> None:
    """An export that fails part-way, leaving its partial file and checkpoint."""
    async with UphanceClient(token=server.token, base_url=server.url, retry=ONCE) as client:
        server.on_request = fail_after(6)
        with pytest.raises(ServerError):
            await export(client, output, form=form, status="all")  # type: ignore[arg-type]
    server.on_request, server.fault_rate = None, 0.0


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_a_crashed_export_resumes_exactly(tmp_path: Path, form: Any) -> None:
    output = tmp_path / f"customers.{form}"
    async with FakeUphance(customers=230, page_size=20, seed=6) as server:
        await interrupted_export(server, output, form)
        assert not output.exists()
        marker = json.loads(checkpoint_path(output).read_text())
        assert marker["checkpoint"]["next_page"] > 1
        assert marker["offset"] <= partial_path(output).stat().st_size
        append(partial_path(output), b'{"id": 1, "half a rec')  # a crash in the middle of a write
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            stats, resumed = await export(client, output, form=form, status="all", resume=True)
    assert resumed
    assert stats.items_yielded == 230 - (marker["checkpoint"]["next_page"] - 1) * 20
    assert names(tmp_path) == [output.name]
    assert exported_ids(output, form) == server.ids("all")


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_a_failed_fresh_export_keeps_the_previous_file(
    server: FakeUphance, tmp_path: Path, form: Any, unreachable_url: str
) -> None:
    output = tmp_path / f"customers.{form}"
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        await export(client, output, form=form, status="all")
    good = output.read_bytes()
    async with UphanceClient(token="wrong", base_url=server.url, retry=ONCE) as client:
        with pytest.raises(AuthenticationError):
            await export(client, output, form=form, status="all")
    async with UphanceClient(token=server.token, base_url=unreachable_url, retry=ONCE) as client:
        with pytest.raises(APIConnectionError):
            await export(client, output, form=form, status="all")
    assert output.read_bytes() == good


async def test_a_cancelled_export_never_leaves_a_checkpoint_without_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C cancels the main task while a checkpoint is being written in a worker thread: the
    cleanup must wait for that thread, or it deletes the file the checkpoint then describes."""
    output = tmp_path / "c.jsonl"
    writing = threading.Event()
    original = write_atomically

    def slow_write(path: Path, data: bytes) -> None:
        writing.set()
        time.sleep(0.3)
        original(path, data)

    monkeypatch.setattr(_export, "write_atomically", slow_write)
    monkeypatch.setattr(_export, "SAVE_EVERY", 0.0)
    async with FakeUphance(customers=200, page_size=10, latency=0.01, seed=2) as server:
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            task = asyncio.create_task(export(client, output, status="all"))
            assert await asyncio.to_thread(writing.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.sleep(0.5)  # a thread the cleanup did not wait for would finish now
        assert checkpoint_path(output).exists()
        assert partial_path(output).exists()
        monkeypatch.setattr(_export, "write_atomically", original)
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            _, resumed = await export(client, output, status="all", resume=True)
    assert resumed
    assert exported_ids(output, "jsonl") == server.ids("all")


async def test_a_fresh_run_discards_an_older_checkpoint(tmp_path: Path) -> None:
    """Interrupted, then a fresh run that fails at once, then --resume: every customer once."""
    output = tmp_path / "c.jsonl"
    async with FakeUphance(customers=230, page_size=20, seed=6) as server:
        await interrupted_export(server, output)
        async with UphanceClient(token="wrong", base_url=server.url, retry=ONCE) as client:
            with pytest.raises(AuthenticationError):
                await export(client, output, status="all")
        assert not checkpoint_path(output).exists()
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            _, resumed = await export(client, output, status="all", resume=True)
    assert not resumed
    assert exported_ids(output, "jsonl") == server.ids("all")


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda saved, partial: partial.unlink(), "missing"),
        (lambda saved, partial: saved.update(offset=saved["offset"] + 2_000_000), "shorter"),
        (lambda saved, partial: saved.update(offset=saved["offset"] - 7), "does not hold"),
        (lambda saved, partial: partial.write_bytes(b"x" * 500_000), "does not hold"),
    ],
)
async def test_a_checkpoint_that_does_not_describe_the_file_is_refused(
    tmp_path: Path, forge: Any, message: str
) -> None:
    output = tmp_path / "c.jsonl"
    async with FakeUphance(customers=230, page_size=20, seed=6) as server:
        await interrupted_export(server, output)
        marker = checkpoint_path(output)
        saved = json.loads(marker.read_text())
        forge(saved, partial_path(output))
        marker.write_text(json.dumps(saved))
        before = partial_path(output).read_bytes() if partial_path(output).exists() else None
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            with pytest.raises(OutputStateError, match=message) as caught:
                await export(client, output, status="all", resume=True)
    assert str(marker) in str(caught.value)
    assert "without --resume" in str(caught.value)
    after = partial_path(output).read_bytes() if partial_path(output).exists() else None
    assert after == before
    assert not output.exists()


async def test_resume_refuses_other_filters_format_or_unreadable_checkpoints(
    server: FakeUphance, tmp_path: Path
) -> None:
    output = tmp_path / "c.jsonl"
    saved = {
        "version": 2,
        "run_id": "r",
        "format": "jsonl",
        "offset": 0,
        "sha256": "",
        "checkpoint": {"next_page": 2, "params": {}},
    }
    checkpoint_path(output).write_text(json.dumps(saved))
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        with pytest.raises(ExportError, match="filters"):
            await export(client, output, status="all", resume=True)
        with pytest.raises(ExportError, match="format"):
            await export(client, output, form="csv", resume=True)
        with pytest.raises(ExportError, match="--output"):
            await export(client, None, resume=True)
        for broken in ("{broken", json.dumps({**saved, "checkpoint": {"next_page": 0}})):
            checkpoint_path(output).write_text(broken)
            with pytest.raises(ExportError, match="cannot read"):
                await export(client, output, resume=True)
        checkpoint_path(output).write_text(json.dumps({**saved, "version": None}))
        with pytest.raises(ExportError, match="version"):
            await export(client, output, resume=True)
    assert server.requests == []


async def test_resume_without_a_checkpoint_starts_over(server: FakeUphance, tmp_path: Path) -> None:
    output = tmp_path / "c.jsonl"
    partial_path(output).write_bytes(b'{"id": 1}\n{"id": 2')
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        stats, resumed = await export(client, output, resume=True)
    assert not resumed
    assert stats.items_yielded == len(server.ids())
    assert exported_ids(output, "jsonl") == server.ids()


async def test_a_second_export_of_the_same_file_is_refused_at_once(tmp_path: Path) -> None:
    output = tmp_path / "c.jsonl"
    async with (
        FakeUphance(customers=300, page_size=20, latency=0.05) as server,
        UphanceClient(token=server.token, base_url=server.url) as client,
    ):
        first = asyncio.ensure_future(export(client, output, status="all", concurrency=1))
        for _ in range(500):
            if partial_path(output).exists():
                break
            await asyncio.sleep(0.01)
        for resume in (False, True):
            with pytest.raises(OutputStateError, match="another export"):
                await export(client, output, status="all", resume=resume)
        await first
    assert exported_ids(output, "jsonl") == server.ids("all")
    assert not lock_path(output).exists()


async def test_leftover_temporary_files_are_removed(server: FakeUphance, tmp_path: Path) -> None:
    output = tmp_path / "c.jsonl"
    (tmp_path / ".c.jsonl.checkpoint.k2j4_x1z").write_text("{half")
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        await export(client, output)
    assert names(tmp_path) == ["c.jsonl"]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"deeper": value}
    return value


async def test_records_nested_hundreds_deep_are_written(
    server: FakeUphance, tmp_path: Path
) -> None:
    output = tmp_path / "c.jsonl"
    odd = server.ids()[3]
    server.patch_customer(odd, {"extra": nested(300)})
    async with UphanceClient(token=server.token, base_url=server.url) as client:
        await export(client, output)
    lines = output.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == server.ids()
    assert json.loads(lines[3])["extra"] == nested(300)


async def test_a_page_nested_too_deep_to_read_is_a_typed_error(
    serve_app: Any, tmp_path: Path
) -> None:
    deep = "[" * 1010 + "]" * 1010
    page = (
        '{"customers": [{"id": 1}, {"id": 2, "x": ' + deep + '}, {"id": 3}],'
        ' "meta": {"current_page": 1, "total_pages": 1}}'
    )

    async def customers(request: web.Request) -> web.Response:
        return web.Response(body=page.encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/customers", customers)
    url = await serve_app(app)
    output = tmp_path / "c.jsonl"
    async with UphanceClient(token="t", base_url=url, retry=ONCE) as client:
        for _ in range(2):  # the resumed export says the same, rather than looping silently
            with pytest.raises(ResponseValidationError) as caught:
                await export(client, output, resume=True)
            assert "nested too deeply" in str(caught.value)
            assert caught.value.url_path == "/customers"
    assert not output.exists()
    # Nothing was checkpointed, so nothing a resume could use is left behind.
    assert not partial_path(output).exists()


def test_encode_names_the_place_of_what_cannot_be_written() -> None:
    record = {"id": "c-9", "a": [1, {"b": nested(1005)}]}
    with pytest.raises(RecordEncodingError) as caught:
        encode(record, "jsonl")
    assert caught.value.record_id == "c-9"
    assert caught.value.json_path == "$.a[1].b.deeper.deeper.deeper..."
    assert "nested 1008 levels deep" in str(caught.value)


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


async def test_resuming_a_large_partial_file_never_stalls_the_loop(
    tmp_path: Path, heartbeat: Any
) -> None:
    """A 500,000-customer partial file (about 300 MB here, sparse): hashing it to verify the
    checkpoint, and every sync, run off the event loop."""
    output = tmp_path / "customers.jsonl"
    async with FakeUphance(customers=200, page_size=20, seed=6) as server:
        await interrupted_export(server, output)
        marker = checkpoint_path(output)
        state = json.loads(marker.read_text())
        size = 300 * 1024 * 1024
        with partial_path(output).open("r+b") as partial:
            partial.truncate(size)  # sparse: cheap to make, as slow to hash as real data
        digest = hashlib.sha256()
        with partial_path(output).open("rb") as partial:
            while chunk := partial.read(1 << 22):
                digest.update(chunk)
        state.update(offset=size, sha256=digest.hexdigest())
        marker.write_text(json.dumps(state))
        async with (
            UphanceClient(token=server.token, base_url=server.url) as client,
            heartbeat() as longest,
        ):
            _, resumed = await export(client, output, status="all", resume=True)
    assert resumed
    assert output.stat().st_size > size
    assert longest[0] < 0.1, longest[0]
