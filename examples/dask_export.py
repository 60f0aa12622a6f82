# mypy: disallow-untyped-calls=False
# (dask.distributed's Client has no annotations.)
"""Export every customer with many workers on Dask: one task per partition of the crawl.

``pip install "uphance-async[dask]"``, then::

    python examples/dask_export.py --base-url URL --token T --partitions 8 --workers 4 \\
        --output-dir out/

starts a ``dask.distributed.LocalCluster`` of ``--workers`` processes (or joins the cluster at
``--scheduler ADDRESS``), splits the crawl with ``client.customers.partitions()`` and runs one
task per partition. Each task opens its own ``UphanceClient`` on its worker's event loop
(sharing one rate budget through ``--redis URL`` if given) and writes ``DIR/part-NNNN.jsonl``
with the library's export: the file appears whole or not at all, and a failed task is run again
from its own checkpoint, not from the start. When every task is done, ``customers.mend()``
repairs the boundaries between partitions: customers a change of the list moved past one go
into ``DIR/part-seams.jsonl``, and one written by two neighbours is dropped from the later file.
``--organisations 9579,9580`` syncs several
organisations instead, one task each, signed in with ``UPHANCE_EMAIL``/``UPHANCE_PASSWORD``
(Uphance keeps the organisation per token, so each task gets a token of its own).

The same two functions map onto any engine: Airflow's dynamic task mapping
(``export_partition.expand(partition=partitions)``) or arq (one job per checkpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uphance_async import (
    Checkpoint,
    RequestEvent,
    RetryPolicy,
    Seams,
    UphanceClient,
    export_customers,
)
from uphance_async.errors import UphanceError

ATTEMPTS = 3


def connect(
    options: dict[str, Any],
    organisation: int | None = None,
    on_request: Callable[[RequestEvent], None] | None = None,
) -> UphanceClient:
    """A client for ``options`` (what the command line gave), on the running loop."""
    limiter = None
    if options.get("redis"):
        from uphance_async.redis import RedisLimiter

        limiter = RedisLimiter(options["redis"], key=options["redis_key"])
    settings: dict[str, Any] = {
        "base_url": options["base_url"],
        "concurrency": options["concurrency"],
        "limiter": limiter,
        "retry": RetryPolicy(max_attempts=options["max_attempts"]),
        "on_request": on_request,
    }
    if organisation is not None:
        return UphanceClient(
            email=options["email"],
            password=options["password"],
            organisation_id=organisation,
            **settings,
        )
    return UphanceClient(token=options["token"], **settings)


async def plan(options: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The partitions of the crawl, as JSON-ready dicts (what travels to the workers)."""
    from uphance_async import converter

    async with connect(options) as client:
        partitions = await client.customers.partitions(count, status=options["status"])
    return [converter.unstructure(partition) for partition in partitions]


async def export_partition(
    options: dict[str, Any], name: str, partition: dict[str, Any] | None, organisation: int | None
) -> dict[str, Any]:
    """One task: export one partition (or a whole organisation) to ``DIR/<name>.jsonl``.

    Runs on the worker's event loop. A failure leaves the partial file and its checkpoint, so
    the next attempt (``resume=True``) carries on from there.
    """
    # Imported here: Dask pickles this function by value, and the converter cannot travel.
    from uphance_async import converter

    output = Path(options["output_dir"]) / f"{name}.jsonl"
    started = time.perf_counter()
    # A worker killed mid-task takes its counters with it; Dask runs the task again elsewhere.
    # A byte per start, kept beside the output, counts those runs too.
    starts = output.with_name(f".{name}.starts")
    with starts.open("ab") as mark:
        mark.write(b".")
    runs = starts.stat().st_size
    counts = {"pages": 0, "retries": 0}

    def count(event: RequestEvent) -> None:
        # Across attempts: a failed attempt's pages are in the file too.
        counts["pages"] += event.url_path == "/customers" and event.status == 200
        counts["retries"] += event.attempt > 1

    ends: list[Checkpoint] = []
    for attempt in range(1, ATTEMPTS + 1):
        async with connect(options, organisation, count) as client:
            try:
                await export_customers(
                    client,
                    output,
                    status=options["status"] if partition is None else None,
                    partition=None
                    if partition is None
                    else converter.structure(partition, Checkpoint),
                    # An earlier attempt, here or on a killed worker, left its checkpoint.
                    resume=attempt > 1 or runs > 1,
                    on_done=ends.append,
                )
            except UphanceError:
                if attempt == ATTEMPTS:
                    raise  # errors pickle: the caller gets the typed error itself
                continue
        with output.open("rb") as written:
            customers = sum(1 for _ in written)
        starts.unlink()
        return {
            "name": name,
            "customers": customers,
            "pages": counts["pages"],
            "retries": counts["retries"],
            "attempts": attempt + runs - 1,
            "seconds": round(time.perf_counter() - started, 2),
            # Where the list stood at both ends of this partition, for mending the seams.
            "end": converter.unstructure(ends[-1]),
        }
    raise AssertionError("unreachable: the last attempt returns or raises")


async def find_seams(options: dict[str, Any], ends: list[dict[str, Any]]) -> Seams:
    """What a change of the list made the partitions miss or repeat at their boundaries."""
    from uphance_async import converter

    async with connect(options) as client:
        return await client.customers.mend(
            [converter.structure(end, Checkpoint) for end in ends], raw=True
        )


def apply_seams(folder: Path, seams: Seams) -> dict[str, int]:
    """Write what the partitions missed into ``DIR/part-seams.jsonl`` and drop what two
    neighbours both wrote from the later one."""
    if seams.missed:
        write_lines(folder / "part-seams.jsonl", [json.dumps(r).encode() for r in seams.missed])
    kept: set[Any] = set()
    for part in sorted(folder.glob("part-[0-9]*.jsonl")) if seams.repeated else []:
        lines = part.read_bytes().splitlines()
        keep = []
        for line in lines:
            key = json.loads(line).get("id")
            if key in seams.repeated:
                if key in kept:
                    continue
                kept.add(key)
            keep.append(line)
        if len(keep) != len(lines):
            write_lines(part, keep)
    return {
        "missed": len(seams.missed),
        "repeated": len(seams.repeated),
        "pages re-read": seams.pages_reread,
    }


def write_lines(path: Path, lines: list[bytes]) -> None:
    """Replace ``path`` whole with ``lines`` (written beside it, then renamed)."""
    beside = path.with_name(f".{path.name}.mending")
    beside.write_bytes(b"".join(line + b"\n" for line in lines))
    os.replace(beside, path)


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Plan, run every task on the cluster, and summarise."""
    from dask.distributed import Client, LocalCluster

    started = time.perf_counter()
    Path(options["output_dir"]).mkdir(parents=True, exist_ok=True)
    # Planned before any cluster starts: a bad token or base URL fails at once.
    jobs: list[tuple[str, dict[str, Any] | None, int | None]]
    if options["organisations"]:
        jobs = [(f"org-{number}", None, number) for number in options["organisations"]]
    else:
        planned = asyncio.run(plan(options, options["partitions"]))
        jobs = [(f"part-{n:04d}", partition, None) for n, partition in enumerate(planned)]
    if options["scheduler"]:
        cluster = None
        dask = Client(options["scheduler"])
    else:
        cluster = LocalCluster(
            n_workers=options["workers"],
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        dask = Client(cluster)
    ready = time.perf_counter()
    try:
        futures = [
            dask.submit(export_partition, options, name, partition, organisation, pure=False)
            for name, partition, organisation in jobs
        ]
        results = dask.gather(futures)
    finally:
        dask.close()
        if cluster is not None:
            cluster.close()
    seams = {}
    if not options["organisations"]:
        found = asyncio.run(find_seams(options, [result["end"] for result in results]))
        seams = apply_seams(Path(options["output_dir"]), found)
    return {
        "tasks": len(results),
        "customers": sum(result["customers"] for result in results)
        + seams.get("missed", 0)
        - seams.get("repeated", 0),
        "pages": sum(result["pages"] for result in results),
        "retries": sum(result["retries"] for result in results),
        "failed attempts": sum(result["attempts"] - 1 for result in results),
        "seams": seams,
        "cluster start seconds": round(ready - started, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "parts": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="API root, e.g. https://api.uphance.com")
    parser.add_argument(
        "--token", default=os.environ.get("UPHANCE_TOKEN"), help="access token (or UPHANCE_TOKEN)"
    )
    parser.add_argument(
        "--status", choices=("active", "inactive", "all"), help="which customers (API default)"
    )
    parser.add_argument("--partitions", type=int, default=4, help="tasks to split into (4)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster processes (2)")
    parser.add_argument("--concurrency", type=int, default=8, help="pages at once per task (8)")
    parser.add_argument("--max-attempts", type=int, default=5, help="tries per request (5)")
    parser.add_argument("--output-dir", required=True, help="folder of the part files")
    parser.add_argument("--scheduler", help="join this Dask scheduler instead of a LocalCluster")
    parser.add_argument("--redis", help="share one rate budget through this Redis URL")
    parser.add_argument("--redis-key", default="uphance", help="the budget's key (uphance)")
    parser.add_argument(
        "--organisations",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        help="sync these organisations (comma-separated ids), one task each",
    )
    args = parser.parse_args(argv)
    options = vars(args) | {
        "email": os.environ.get("UPHANCE_EMAIL"),
        "password": os.environ.get("UPHANCE_PASSWORD"),
    }
    if not args.organisations and not args.token:
        parser.error("give --token (or UPHANCE_TOKEN)")
    if args.organisations and not (options["email"] and options["password"]):
        parser.error("--organisations signs in: set UPHANCE_EMAIL and UPHANCE_PASSWORD")
    try:
        summary = run(options)
    except UphanceError as error:
        print(f"dask_export: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in summary.items() if k != "parts"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
