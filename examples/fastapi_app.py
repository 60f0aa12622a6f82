"""A FastAPI service on top of uphance-async: one client for the whole app, opened in its lifespan.

Run it with ``UPHANCE_TOKEN=... uvicorn examples.fastapi_app:app``. Every request handler shares
the client (its connection pool, rate limiter and retry policy); making a client per request
would throw all of that away on every call.

Uphance's errors become answers a caller can act on: invalid input 422, no such customer 404,
Uphance throttling, or more load than the rate budget serves within the deadline, 503 with
``Retry-After``, Uphance unreachable 502 and too slow 504.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import msgspec
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from uphance_async import UphanceClient, converter
from uphance_async.errors import (
    APIConnectionError,
    APITimeoutError,
    NotFoundError,
    RateLimitError,
    UphanceError,
)


def error_answer(error: UphanceError) -> JSONResponse:
    """The answer for an error of the Uphance API (the most specific class first)."""
    if isinstance(error, NotFoundError):
        return JSONResponse({"detail": "no such customer"}, status_code=404)
    if isinstance(error, RateLimitError):
        wait = str(max(1, round(error.retry_after or 1)))
        return JSONResponse(
            {"detail": "Uphance is throttling us; try again later"},
            status_code=503,
            headers={"Retry-After": wait},
        )
    if isinstance(error, APITimeoutError):
        return JSONResponse({"detail": "Uphance did not answer in time"}, status_code=504)
    if isinstance(error, APIConnectionError):
        return JSONResponse({"detail": "Uphance cannot be reached"}, status_code=502)
    return JSONResponse({"detail": f"Uphance failed: {type(error).__name__}"}, status_code=502)


def client_from_environment() -> UphanceClient:
    """The client the UPHANCE_* variables describe.

    ``UPHANCE_DEADLINE`` (seconds, 2 by default; ``none`` for no deadline) bounds each call to
    Uphance, waits for the rate budget included: under more load than the budget serves, a
    caller is told at once to come back (503 with ``Retry-After``) instead of waiting in a long
    queue.
    """
    deadline = os.environ.get("UPHANCE_DEADLINE", "2")
    return UphanceClient(
        token=os.environ["UPHANCE_TOKEN"],
        base_url=os.environ.get("UPHANCE_BASE_URL", "https://api.uphance.com"),
        deadline=None if deadline.lower() == "none" else float(deadline),
    )


def create_app(make_client: Callable[[], UphanceClient] = client_from_environment) -> FastAPI:
    """The app; ``make_client`` is called once, at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_client() as client:
            app.state.uphance = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(UphanceError)
    async def uphance_failed(request: Request, error: UphanceError) -> JSONResponse:
        return error_answer(error)

    @app.get("/customers/{customer_id}")
    async def customer(
        request: Request, customer_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
    ) -> JSONResponse:
        client: UphanceClient = request.app.state.uphance
        found = await client.customers.get(customer_id)
        return JSONResponse(converter.unstructure(found))

    @app.get("/customers.ndjson")
    async def customers(
        request: Request, status: Literal["active", "inactive", "all"] = "active"
    ) -> StreamingResponse:
        client: UphanceClient = request.app.state.uphance
        stream = client.customers.stream(status=status, raw=True)
        # The first page is read before the answer starts, so that a bad token or an
        # unreachable Uphance is an error status (see error_answer), not a cut-off 200.
        try:
            first = await anext(stream, None)
        except BaseException:
            await stream.aclose()
            raise

        async def lines() -> AsyncIterator[bytes]:
            # Closing the stream (client gone, or done) stops its page requests at once.
            async with stream:
                if first is None:
                    return
                yield msgspec.json.encode(first) + b"\n"
                async for record in stream:
                    yield msgspec.json.encode(record) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


app = create_app()
