"""A FastAPI service on top of uphance-async: one client for the whole app, opened in its lifespan.

Run it with ``UPHANCE_TOKEN=... uvicorn examples.fastapi_app:app``. Every request handler shares
the client (its connection pool, rate limiter and retry policy); making a client per request
would throw all of that away on every call.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from uphance_async import UphanceClient, converter
from uphance_async.errors import NotFoundError


def client_from_environment() -> UphanceClient:
    """The client the UPHANCE_* variables describe."""
    return UphanceClient(
        token=os.environ["UPHANCE_TOKEN"],
        base_url=os.environ.get("UPHANCE_BASE_URL", "https://api.uphance.com"),
    )


def create_app(make_client: Callable[[], UphanceClient] = client_from_environment) -> FastAPI:
    """The app; ``make_client`` is called once, at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_client() as client:
            app.state.uphance = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/customers/{customer_id}")
    async def customer(customer_id: int, request: Request) -> JSONResponse:
        client: UphanceClient = request.app.state.uphance
        try:
            found = await client.customers.get(customer_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail="no such customer") from None
        return JSONResponse(converter.unstructure(found))

    @app.get("/customers.ndjson")
    async def customers(
        request: Request, status: Literal["active", "inactive", "all"] = "active"
    ) -> StreamingResponse:
        client: UphanceClient = request.app.state.uphance

        async def lines() -> AsyncIterator[bytes]:
            # Closing the stream (client gone, or done) stops its page requests at once.
            async with client.customers.stream(status=status, raw=True) as stream:
                async for record in stream:
                    yield orjson.dumps(record) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


app = create_app()
