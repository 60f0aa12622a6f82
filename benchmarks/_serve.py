"""A FakeUphance in a process of its own, so its CPU does not compete with the client's.

Prints one JSON line with ``url`` and ``token`` once listening; serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from uphance_async.testing import FakeUphance


async def squeeze(server: FakeUphance, start: float, end: float, rate: float) -> None:
    """From ``start`` to ``end`` (epoch seconds) allow only ``rate`` requests/s, as others
    taking most of the budget would."""
    full = server.rate_limit
    await asyncio.sleep(max(0.0, start - time.time()))
    server.rate_limit = rate
    await asyncio.sleep(max(0.0, end - time.time()))
    server.rate_limit = full


async def serve(args: argparse.Namespace) -> None:
    server = FakeUphance(
        customers=args.customers,
        page_size=args.page_size,
        latency=args.latency,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        retry_after=not args.no_retry_after,
        cache_pages=args.cache,
        record_requests=False,
        seed=1,
    )
    if args.change_every:
        server.change_every(
            args.change_every, delete=args.delete, create=args.create, times=args.times
        )
    async with server:
        print(json.dumps({"url": server.url, "token": server.token}), flush=True)
        loop = asyncio.get_running_loop()
        squeezing = None
        if args.squeeze:
            start, end, rate = (float(part) for part in args.squeeze.split(","))
            squeezing = asyncio.ensure_future(squeeze(server, start, end, rate))
        await loop.run_in_executor(None, sys.stdin.read)
        if squeezing is not None:
            squeezing.cancel()
        print(
            json.dumps({"throttled": server.throttled, "max_in_flight": server.max_in_flight}),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--rate-burst", type=int, default=None)
    parser.add_argument("--cache", action="store_true")
    parser.add_argument("--no-retry-after", action="store_true")
    parser.add_argument(
        "--squeeze", help="START,END,RATE: between these epoch seconds, only RATE requests/s"
    )
    parser.add_argument("--change-every", type=int, default=0, help="requests between changes")
    parser.add_argument("--delete", type=int, default=0, help="customers deleted at the front")
    parser.add_argument("--create", type=int, default=0, help="customers created at the front")
    parser.add_argument("--times", type=int, default=None, help="changes in all")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
