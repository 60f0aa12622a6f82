"""The FastAPI recipe in examples/, run in-process against FakeUphance."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import httpx

from uphance_async import UphanceClient
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
