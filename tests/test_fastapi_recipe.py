"""The FastAPI recipe in examples/, run in-process against FakeUphance."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from aiohttp import web

from uphance_async import RetryPolicy, UphanceClient
from uphance_async.testing import FakeUphance

RECIPE = Path(__file__).parent.parent / "examples" / "fastapi_app.py"


def load_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app", RECIPE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_one_shared_client_serves_customers(server: FakeUphance) -> None:
    recipe = load_recipe()
    made: list[UphanceClient] = []

    def make() -> UphanceClient:
        made.append(UphanceClient(token=server.token, base_url=server.url))
        return made[-1]

    app = recipe.create_app(make)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
            wanted = server.ids("all")[7]
            one = await http.get(f"/customers/{wanted}")
            assert one.status_code == 200
            assert one.json()["id"] == wanted
            assert one.json()["name"] == server.customer(wanted)["name"]
            assert (await http.get("/customers/1")).status_code == 404
            assert (await http.get("/customers.ndjson?status=bogus")).status_code == 422
            listed = await http.get("/customers.ndjson?status=all")
            assert listed.headers["content-type"] == "application/x-ndjson"
            ids = [json.loads(line)["id"] for line in listed.text.splitlines()]
            assert ids == server.ids("all")
    assert len(made) == 1
    assert made[0].closed


async def test_errors_become_answers_a_caller_can_act_on(
    server: FakeUphance, serve_app: Any, unreachable_url: str
) -> None:
    recipe = load_recipe()
    throttled = web.Application()

    async def slow_down(request: web.Request) -> web.Response:
        return web.json_response({"error": "slow"}, status=429, headers={"Retry-After": "7"})

    throttled.router.add_get("/customers/{id}", slow_down)
    throttled_url = await serve_app(throttled)
    silent = web.Application()

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    silent.router.add_get("/customers/{id}", never)
    silent_url = await serve_app(silent)
    once = RetryPolicy(max_attempts=1)
    cases = [
        (server.url, "/customers/0", 422, None),
        (server.url, "/customers/abc", 422, None),
        (server.url, "/customers/1", 404, None),
        (throttled_url, "/customers/5", 503, "7"),
        (silent_url, "/customers/5", 504, None),
        (unreachable_url, "/customers/5", 502, None),
    ]
    for base_url, path, status, retry_after in cases:

        def make(base_url: str = base_url) -> UphanceClient:
            return UphanceClient(token=server.token, base_url=base_url, retry=once, timeout=0.3)

        app = recipe.create_app(make)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
                answer = await http.get(path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers.get("Retry-After") == retry_after
        assert "Traceback" not in answer.text


async def test_the_ndjson_route_answers_an_error_status_for_a_bad_token(
    server: FakeUphance,
) -> None:
    recipe = load_recipe()

    def make() -> UphanceClient:
        return UphanceClient(token="not-the-token-0123", base_url=server.url)

    app = recipe.create_app(make)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
            answer = await http.get("/customers.ndjson?status=all")
    assert answer.status_code == 502, answer.text
    assert answer.json()["detail"] == "Uphance failed: AuthenticationError"


async def test_load_beyond_the_budget_is_shed_as_503_with_retry_after(
    server: FakeUphance,
) -> None:
    from uphance_async import Limiter

    recipe = load_recipe()

    def make() -> UphanceClient:
        return UphanceClient(
            token=server.token, base_url=server.url, limiter=Limiter(rate=10.0), deadline=0.5
        )

    app = recipe.create_app(make)
    wanted = server.ids()[0]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
            answers = await asyncio.gather(*(http.get(f"/customers/{wanted}") for _ in range(30)))
    statuses = [answer.status_code for answer in answers]
    assert 3 <= statuses.count(200) <= 8
    shed = [answer for answer in answers if answer.status_code == 503]
    assert len(shed) + statuses.count(200) == 30
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in shed)
