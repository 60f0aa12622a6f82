"""Streams a whole tenant in a fresh process and prints its peak RSS in MB (one JSON line)."""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from uphance_async import UphanceClient


async def crawl(url: str, token: str) -> int:
    count = 0
    async with UphanceClient(token=token, base_url=url) as client:
        async for _ in client.customers.stream(status="all"):
            count += 1
    return count


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    count = asyncio.run(crawl(url, token))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"customers": count, "peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main()
