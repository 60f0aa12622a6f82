"""Resumable exports of every customer to JSON lines or CSV, that never destroy a good file.

An export to ``FILE`` writes ``FILE.partial`` and renames it over ``FILE`` only once every
customer is in it: a failed or interrupted export leaves any earlier ``FILE`` as it was.
Records are appended whole. When a page completes, at most every :data:`SAVE_EVERY` seconds,
the partial file is synced to disk and then a checkpoint (``FILE.checkpoint``) records the
stream's checkpoint, the partial file's length and the SHA-256 of those bytes, the format, the
filters and a run id. ``--resume`` trusts a checkpoint only when the partial file still starts
with exactly the bytes it describes; it then cuts the file back to that length and carries on,
so no record is lost, repeated or cut in half (for a list that changes meanwhile, see the
exactness contract of :class:`~uphance_async.PageStream`). A lock
(``FILE.lock``) keeps a second export of the same ``FILE`` out while one runs. Syncing, hashing
and checkpointing run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import attrs

from ._convert import converter
from ._files import (
    LockedError,
    exclusive_lock,
    remove_leftovers,
    sync_directory,
    write_atomically,
)
from ._records import Format, encode, file_header
from ._validate import positive_int
from .client import UphanceClient
from .errors import ExportError, OutputStateError
from .pagination import Checkpoint, PageStream, StreamStats
from .resources.customers import query_filters


def checkpoint_path(output: Path) -> Path:
    """Where the checkpoint of an export to ``output`` is kept."""
    return output.with_name(output.name + ".checkpoint")


def partial_path(output: Path) -> Path:
    """Where an export to ``output`` writes until it completes."""
    return output.with_name(output.name + ".partial")


def lock_path(output: Path) -> Path:
    """The lock an export to ``output`` holds while it runs."""
    return output.with_name(output.name + ".lock")


_CHECKPOINT_VERSION = 2
SAVE_EVERY = 0.5
"""Seconds between two checkpoints of an export (each one an fsync of the file)."""


@attrs.frozen
class _Saved:
    """What a checkpoint file says: enough to prove it describes the partial file beside it."""

    checkpoint: Checkpoint
    offset: int
    sha256: str
    form: str
    run_id: str


def _parse_saved(data: Any) -> _Saved:
    if data.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(f"version {data.get('version')!r} is not {_CHECKPOINT_VERSION}")
    saved = _Saved(
        checkpoint=converter.structure(data["checkpoint"], Checkpoint),
        offset=int(data["offset"]),
        sha256=str(data["sha256"]),
        form=str(data["format"]),
        run_id=str(data["run_id"]),
    )
    positive_int("next_page", saved.checkpoint.next_page)
    if saved.offset < 0:
        raise ValueError(f"offset {saved.offset} is negative")
    return saved


def _load_checkpoint(path: Path, form: Format, start: Checkpoint) -> _Saved:
    try:
        saved = _parse_saved(json.loads(path.read_text()))
    except Exception as exc:  # whatever the file holds, the answer is the same
        raise ExportError(
            f"cannot read the checkpoint {path} ({_brief(exc)}); "
            "run the export again without --resume to start over"
        ) from None
    if saved.form != form:
        raise ExportError(f"the checkpoint {path} is for --format {saved.form}, not {form}")
    if saved.checkpoint.params != start.params:
        raise ExportError(
            f"the checkpoint {path} was made with other filters (--status, --agent-contact)"
        )
    if saved.checkpoint.stop_page != start.stop_page:
        raise ExportError(f"the checkpoint {path} was made for another partition")
    return saved


def _brief(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:200]


def _verified_prefix(partial: Path, marker: Path, saved: _Saved) -> Any:
    """A SHA-256 hasher fed with the ``saved.offset`` first bytes of ``partial``, once they are
    proven to be the bytes the checkpoint describes; :class:`OutputStateError` if they are not."""
    restart = "run the export again without --resume to start over"
    try:
        size = partial.stat().st_size
    except FileNotFoundError:
        raise OutputStateError(
            f"the checkpoint {marker} describes {partial}, which is missing; {restart}"
        ) from None
    if size < saved.offset:
        raise OutputStateError(
            f"{partial} is shorter ({size} bytes) than its checkpoint {marker} says "
            f"({saved.offset} bytes); {restart}"
        )
    hasher = hashlib.sha256()
    left = saved.offset
    with partial.open("rb") as source:
        while left:
            chunk = source.read(min(left, 1 << 20))
            if not chunk:
                break
            hasher.update(chunk)
            left -= len(chunk)
    if left or hasher.hexdigest() != saved.sha256:
        raise OutputStateError(
            f"{partial} does not hold the data its checkpoint {marker} describes; {restart}"
        )
    return hasher


class _Sink:
    """The partial file, appended one record at a time, with a running SHA-256 of its content."""

    def __init__(self, path: Path, offset: int, hasher: Any) -> None:
        self.file = open(path, "ab")  # noqa: SIM115 - closed by close()
        self.file.truncate(offset)
        self.hasher = hasher
        # Held by work in a worker thread: a cancelled await does not stop that thread, and
        # whoever cleans up after a failure must see what it finished (a checkpoint written
        # after the cleanup looked would describe a file the cleanup deleted).
        self.busy = threading.RLock()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hasher.update(data)

    def sync(self) -> int:
        with self.busy:
            self.file.flush()
            os.fsync(self.file.fileno())
            return self.file.tell()

    def close(self) -> None:
        self.file.close()


@contextlib.contextmanager
def _locked(output: Path) -> Iterator[None]:
    try:
        with exclusive_lock(lock_path(output)):
            yield
    except LockedError:
        raise OutputStateError(
            f"another export to {output} is running (it holds {lock_path(output)}); "
            "wait for it to finish or stop it"
        ) from None


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
    partition: Checkpoint | None = None,
    verify: bool = False,
    on_done: Callable[[Checkpoint], None] | None = None,
) -> tuple[StreamStats, bool]:
    """Stream every customer into ``output`` (``None``: ``stdout``), as the command line's
    ``customers export`` does, with the same guarantees; returns (stats, resumed).

    With ``resume`` and a checkpoint beside ``output``, carries on where the last run stopped.
    An export to standard output is written as it comes and cannot be resumed. ``partition``
    (from ``client.customers.partitions()``) exports only its pages, with its filters.
    ``verify`` reads the list again after the crawl (see ``customers.stream``); it cannot be
    combined with ``resume``. ``on_done`` is called with the stream's last checkpoint once
    every customer is written: ``client.customers.mend()`` takes those of all partitions.
    """
    if verify and resume:
        raise ExportError("--verify re-reads the whole list in one run: not with --resume")
    params = query_filters(status, agent_contact)
    if partition is not None:
        if params:
            raise ExportError("a partition carries its own filters: give no --status or agent")
        params = dict(partition.params)
    start = partition if partition is not None else Checkpoint(1, params)
    stream: PageStream[Any]
    if output is None:
        if resume:
            raise ExportError("--resume needs --output FILE (not standard output)")
        if stdout is None:
            raise ExportError("no output given")
        stream = client.customers.stream(
            concurrency=concurrency, resume=start, raw=True, verify=verify
        )
        await _write(stream, stdout.write, form, progress, None)
        stdout.flush()
        resumed = False
    else:
        if not output.parent.exists():
            # As curl -o does: a mistyped folder is a usage error, not a tree to create.
            raise ExportError(f"the folder of {output} does not exist")
        with _locked(output):
            stream, resumed = await _export_to_file(
                client, output, form, start, resume, concurrency, progress, verify
            )
    if on_done is not None:
        on_done(stream.checkpoint)
    return stream.stats, resumed


async def _export_to_file(
    client: UphanceClient,
    output: Path,
    form: Format,
    start: Checkpoint,
    resume: bool,
    concurrency: int | None,
    progress: Callable[[StreamStats], None] | None,
    verify: bool,
) -> tuple[PageStream[Any], bool]:
    marker, partial = checkpoint_path(output), partial_path(output)
    remove_leftovers(marker)
    saved = _load_checkpoint(marker, form, start) if resume and marker.exists() else None
    if saved is None:
        # Whatever an earlier run left no longer describes what is about to be written.
        marker.unlink(missing_ok=True)
        hasher, offset, run_id = hashlib.sha256(), 0, uuid.uuid4().hex
    else:
        # Hashing a large partial file takes long: never on the event loop.
        hasher = await anyio.to_thread.run_sync(_verified_prefix, partial, marker, saved)
        offset, run_id = saved.offset, saved.run_id
    stream = client.customers.stream(
        concurrency=concurrency,
        resume=saved.checkpoint if saved else start,
        raw=True,
        verify=verify,
    )
    sink = _Sink(partial, offset, hasher)
    try:

        def save(checkpoint: Checkpoint) -> None:
            with sink.busy:
                state = {
                    "version": _CHECKPOINT_VERSION,
                    "run_id": run_id,
                    "format": form,
                    # Synced first: a checkpoint never points past bytes that are on disk.
                    "offset": sink.sync(),
                    "sha256": sink.hasher.hexdigest(),
                    "checkpoint": converter.unstructure(checkpoint),
                }
                write_atomically(marker, json.dumps(state).encode())

        await _write(stream, sink.write, form, progress, save, header=offset == 0)
        await anyio.to_thread.run_sync(sink.sync)
    except BaseException:
        with sink.busy:
            sink.close()
        if not marker.exists():
            # No checkpoint describes it, so no resume can use it: leave nothing behind.
            partial.unlink(missing_ok=True)
        raise
    sink.close()
    # The checkpoint goes first: a crash before the rename then leaves a complete partial file
    # that the next run starts over from, never a checkpoint without its file.
    marker.unlink(missing_ok=True)
    os.replace(partial, output)
    await anyio.to_thread.run_sync(sync_directory, output.parent)
    return stream, saved is not None


async def _write(
    stream: Any,
    write: Callable[[bytes], Any],
    form: Format,
    progress: Callable[[StreamStats], None] | None,
    save: Callable[[Checkpoint], None] | None,
    *,
    header: bool = True,
) -> None:
    """Every record of ``stream`` through ``write``; ``save`` is called, in a worker thread, as a
    page completes once :data:`SAVE_EVERY` seconds have passed since the last save (a sync per
    page costs a seventh of a fast export; a resume re-reads at most those seconds' pages)."""
    if header:
        write(file_header(form))
    done_before = stream.checkpoint.next_page
    saved_at = -math.inf
    async with stream:
        async for record in stream:
            if save is not None and stream.checkpoint.next_page != done_before:
                # The record just received opens a new page: every earlier page is written.
                done_before = stream.checkpoint.next_page
                if time.monotonic() - saved_at >= SAVE_EVERY:
                    await anyio.to_thread.run_sync(save, stream.checkpoint)
                    saved_at = time.monotonic()
            write(encode(record, form))
            if progress is not None:
                progress(stream.stats)
