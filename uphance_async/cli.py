"""The command line: ``uphance-async demo`` (also ``python -m uphance_async demo``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from .client import UphanceClient
from .pagination import StreamStats
from .testing import FakeUphance


async def export_jsonl(client: UphanceClient, output: Path, *, status: str | None) -> StreamStats:
    """Stream every customer into ``output`` as JSON lines, atomically (temporary file, rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(handle, "wb") as sink:
            async with client.customers.stream(status=status, raw=True) as stream:
                async for record in stream:
                    sink.write(orjson.dumps(record) + b"\n")
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise
    return stream.stats


async def _demo(customers: int, latency: float, output: Path, concurrency: int) -> None:
    async with FakeUphance(customers=customers, page_size=100, latency=latency) as server:
        client = UphanceClient(token=server.token, base_url=server.url, concurrency=concurrency)
        async with client:
            started = time.perf_counter()
            stats = await export_jsonl(client, output, status="all")
            elapsed = time.perf_counter() - started
    rate = stats.items_yielded / elapsed if elapsed else 0.0
    print(
        f"exported {stats.items_yielded} customers from {stats.pages_fetched} pages "
        f"to {output} in {elapsed:.2f} s ({rate:,.0f} customers/s; "
        f"{latency * 1000:.0f} ms per page, concurrency {concurrency}, "
        f"{stats.retries} retries)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uphance-async", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="export every customer of a built-in fake tenant (no account needed)"
    )
    demo.add_argument("--customers", type=int, default=20_000, help="tenant size (20000)")
    demo.add_argument("--latency", type=float, default=0.05, help="seconds per page (0.05)")
    demo.add_argument("--concurrency", type=int, default=8, help="pages at once (8)")
    demo.add_argument(
        "--output", type=Path, default=Path("uphance-demo-customers.jsonl"), help="JSONL file"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.customers < 0 or args.latency < 0 or args.concurrency < 1:
        print(
            "uphance-async: --customers, --latency must be >= 0, --concurrency >= 1",
            file=sys.stderr,
        )
        return 2
    asyncio.run(_demo(args.customers, args.latency, args.output, args.concurrency))
    return 0
