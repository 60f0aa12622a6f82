"""Many concurrent ``get()`` callers in one process, for the rate-limit benchmarks.

``python -m benchmarks._callers URL TOKEN --callers 100 --seconds 20 [--redis URL --key K]``
prints one JSON line: successful requests, 429 answers and errors, counted by the client's
``on_request`` hook over the run. ``--calls N`` makes N calls at once and stops when they are
done (``seconds`` is then how long that took). ``--timeline`` adds the epoch time of every
successful answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from uphance_async import RequestEvent, RetryPolicy, UphanceClient


async def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = {"ok": 0, "throttled": 0, "other": 0}
    answered: list[float] = []

    def count(event: RequestEvent) -> None:
        if event.status == 200:
            counts["ok"] += 1
            if args.timeline:
                answered.append(time.time())
        elif event.throttled:
            counts["throttled"] += 1
        else:
            counts["other"] += 1

    limiter: Any = None
    if args.redis:
        from uphance_async.redis import RedisLimiter

        limiter = RedisLimiter(args.redis, key=args.key, fallback=args.fallback)
    client = UphanceClient(
        token=args.token,
        base_url=args.url,
        on_request=count,
        limiter=limiter,
        retry=RetryPolicy(max_attempts=50),
    )
    errors = 0
    longest = 0.0
    deadline = time.monotonic() + args.seconds

    async def caller(number: int) -> None:
        nonlocal errors, longest
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                await client.customers.get(args.first_id + number % 50)
            except Exception:
                errors += 1
            longest = max(longest, time.monotonic() - began)
            if args.calls:
                return  # a fixed amount of work: one call per caller

    async with client:
        if args.start_at:
            await asyncio.sleep(max(0.0, args.start_at - time.time()))
            deadline = time.monotonic() + args.seconds
        started = time.monotonic()
        await asyncio.gather(*(caller(n) for n in range(args.calls or args.callers)))
        elapsed = time.monotonic() - started
    report = {**counts, "errors": errors, "seconds": elapsed, "longest_call": longest}
    return {**report, "answered": answered} if args.timeline else report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--first-id", type=int, default=985_700)
    parser.add_argument("--redis")
    parser.add_argument("--key", default="uphance-benchmark")
    parser.add_argument("--fallback", choices=("error", "local"), default="error")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument(
        "--calls", type=int, default=0, help="make this many calls, all at once, then stop"
    )
    parser.add_argument("--timeline", action="store_true", help="report each success's time")
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
