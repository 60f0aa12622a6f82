"""FakeUphance's HTTP face: its routes and the middleware every request meets first (latency,
sign-in, the rate budget, injected faults, the record). The tenant it serves is the
:class:`~uphance_async.testing.FakeUphance` object's state; this module only reads and changes it
as requests ask.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs
from aiohttp import web

from . import _data

if TYPE_CHECKING:
    from ._server import FakeUphance, _Row

__all__ = ["FAULTS", "Fault", "RecordedRequest", "application"]

Fault = Literal["500", "502", "503", "drop", "truncate", "not_json", "slow"]
FAULTS: tuple[Fault, ...] = ("500", "502", "503", "drop", "truncate", "not_json", "slow")
_OPEN_ROUTE = ("POST", "/oauth/token")
# The API's own values, spelled here rather than taken from the client: a change in the client
# must not silently change what the fake accepts.
_STATUSES = ("active", "inactive", "all")


@attrs.frozen(slots=True)
class RecordedRequest:
    """A request the fake server received.

    ``headers`` has ``Authorization`` redacted and ``body`` any password or refresh token;
    ``organisation`` is the organisation its token had selected when it arrived.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    status: int
    fault: str | None
    authorized: bool
    organisation: int | None = None


def _token_answer(fake: FakeUphance, body: Any) -> web.Response:
    fake.token_requests += 1
    grant = body.get("grant_type") if isinstance(body, dict) else None
    if grant == "password":
        if body.get("email") != fake.email or body.get("password") != fake.password:
            return _invalid_grant("The e-mail or password is not correct")
    elif grant == "refresh_token":
        refresh = body.get("refresh_token")
        if refresh not in fake._refresh_tokens:
            return _invalid_grant("The refresh token is invalid, expired or already used")
        fake._refresh_tokens.discard(refresh)
    else:
        return _json(400, {"error": "unsupported_grant_type"})
    access, refresh, now = fake._issue()
    return _json(
        200,
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": fake.token_lifetime,
            "refresh_token": refresh,
            "created_at": now,
        },
    )


def _organisations(fake: FakeUphance) -> web.Response:
    listed = [{"id": key, "name": name} for key, name in fake.organisations.items()]
    return _json(200, {"organisations": listed})


def _set_current_org(fake: FakeUphance, token: str, body: Any) -> web.Response:
    chosen = body.get("organizationId") if isinstance(body, dict) else None
    if chosen not in fake.organisations:
        return _json(422, {"errors": {"organizationId": ["is not one of yours"]}})
    fake._organisation_of[token] = chosen
    return _json(200, {"Status": "Updated"})


async def _gate(fake: FakeUphance, request: web.Request, handler: _Handler) -> web.StreamResponse:
    """What every request meets before its route: latency, sign-in, the rate budget and
    the injected faults; and its record afterwards."""
    fake.in_flight += 1
    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
    body: Any = None
    fault: str | None = None
    presented = _bearer(request)
    refusal = None if (request.method, request.path) == _OPEN_ROUTE else fake._refusal(presented)
    authorized = refusal is None
    organisation = fake._organisation_of.get(presented) if presented else None
    response: web.StreamResponse
    try:
        if fake.on_request is not None:
            fake.on_request(fake)
        body = await _body(request)
        if fake.latency:
            await asyncio.sleep(fake.latency)
        if refusal is not None:
            response = _json(
                401,
                {"error": "invalid_token", "error_description": refusal},
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        elif (throttled := _throttle(fake)) is not None:
            response = throttled
        else:
            fault = _pick_fault(fake, request.method)
            if fault is None or fault == "slow":
                if fault == "slow":
                    await asyncio.sleep(fake.slow_seconds)
                response = await handler(request)
            else:
                response = await _fault(fake, request, fault)
        return response
    finally:
        fake.in_flight -= 1
        if fake.record_requests:
            fake.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers={
                        key: ("<redacted>" if key.lower() == "authorization" else value)
                        for key, value in request.headers.items()
                    },
                    body=_redacted(body),
                    status=response.status if "response" in locals() else 0,
                    fault=fault,
                    authorized=authorized,
                    organisation=organisation,
                )
            )


def _throttle(fake: FakeUphance) -> web.Response | None:
    if fake.rate_limit is None:
        return None
    now = time.monotonic()
    fake._tokens = min(
        float(fake.rate_burst), fake._tokens + (now - fake._refilled) * fake.rate_limit
    )
    fake._refilled = now
    if fake._tokens >= 1:
        fake._tokens -= 1
        return None
    fake.throttled += 1
    if not fake.retry_after:
        return _json(429, {"error": "Too many requests"})
    wait = max(1, math.ceil((1 - fake._tokens) / fake.rate_limit))
    return _json(429, {"error": "Too many requests"}, {"Retry-After": str(wait)})


def _pick_fault(fake: FakeUphance, method: str) -> Fault | None:
    if method != "GET" or not fake.fault_rate or not fake.faults:
        return None
    if fake._faults_rng.random() >= fake.fault_rate:
        return None
    fake.faults_injected += 1
    return fake._faults_rng.choice(fake.faults)


async def _fault(fake: FakeUphance, request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault in ("500", "502", "503"):
        page = f"<html><body><h1>{fault} Server Error</h1></body></html>"
        return web.Response(status=int(fault), text=page, content_type="text/html")
    if fault == "not_json":
        return web.Response(text="<html>maintenance</html>", content_type="text/html")
    if fault == "drop":
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 4096
    await response.prepare(request)
    await response.write(b'{"customers": [{"id": 1, "na')
    assert request.transport is not None
    request.transport.close()
    return response


def _list(fake: FakeUphance, request: web.Request) -> web.Response:
    query = request.query
    status = query.get("by_status", "active")
    if status not in _STATUSES:
        return _json(400, {"error": f"by_status must be one of {', '.join(_STATUSES)}"})
    page = _page_number(query)
    if isinstance(page, web.Response):
        return page
    agent = query.get("by_agents_contact", "")
    key = (status, agent, page)
    encoded = fake._pages.get(key) if fake.cache_pages else None
    if encoded is None:
        rows = fake._filter(status, agent)
        chunk = rows[(page - 1) * fake.page_size : page * fake.page_size]
        records = [fake._record(row) for row in chunk]
        encoded = _page_body(fake, "customers", records, page, len(rows))
        if fake.cache_pages:
            fake._pages[key] = encoded
    return web.Response(body=encoded, content_type="application/json")


def _page_body(fake: FakeUphance, key: str, records: list[Any], page: int, total: int) -> bytes:
    total_pages = math.ceil(total / fake.page_size)
    answer = {
        key: records,
        "meta": {
            "current_page": page,
            "next_page": page + 1 if page < total_pages else None,
            "prev_page": page - 1 if page > 1 else None,
            "total_pages": total_pages,
            "total_count": total,
        },
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def _list_invoices(fake: FakeUphance, request: web.Request) -> web.Response:
    page = _page_number(request.query)
    if isinstance(page, web.Response):
        return page
    since = request.query.get("since_id", "0")
    if not since.isdigit():
        return _json(400, {"error": "since_id must be a whole number"})
    found = fake.invoices(int(since))
    chunk = found[(page - 1) * fake.page_size : page * fake.page_size]
    body = _page_body(fake, "invoices", chunk, page, len(found))
    return web.Response(body=body, content_type="application/json")


def _show(fake: FakeUphance, key: str) -> web.Response:
    row = fake._by_id.get(int(key)) if key.isdigit() else fake._find_by_email(key)
    if row is None:
        return _not_found(f"customer {key}")
    return _json(200, {"customer": fake._record(row)})


def _create_customer(fake: FakeUphance, body: Any) -> web.Response:
    errors = _check(body, _CUSTOMER_FIELDS, required=("name",))
    if errors:
        return _json(422, {"errors": errors})
    (customer_id,) = fake.insert_customers(1)
    row = fake._by_id[customer_id]
    row.active = True
    row.agent = None
    channel = next((c for c in _data.CHANNELS if c[0] == body.get("channelId")), None)
    row.record = {
        "id": customer_id,
        "name": body["name"],
        "company_type": "customer",
        "customer_type": body.get("customer_type"),
        "country": body.get("country"),
        "city": body.get("city"),
        "vat_number": body.get("vat_number"),
        "channel_id": body.get("channelId"),
        "channel_name": channel[1] if channel else None,
        "currency": channel[2] if channel else None,
        "notes": "",
        "reference": None,
        "payment_term": body.get("paymentTerm"),
        "orders_count": 0,
        "last_order": None,
        "outstanding_amounts": [],
        "purchase_amounts": [],
        "invoices": [],
        "people": [],
        "addresses": [],
        "agents": [],
    }
    return _json(201, {"customer": row.record})


def _contacts(fake: FakeUphance, row: _Row, body: Any) -> web.Response:
    return _json(200, {"contacts": fake._record(row)["people"]})


def _addresses(fake: FakeUphance, row: _Row, body: Any) -> web.Response:
    return _json(200, {"addresses": fake._record(row)["addresses"]})


def _create_contact(fake: FakeUphance, row: _Row, body: Any) -> web.Response:
    errors = _check(body, _CONTACT_FIELDS, required=())
    if not errors and not any(body.get(k) for k in ("firstName", "lastName", "email")):
        errors = {"base": ["firstName, lastName or email must be given"]}
    if not errors and body.get("email") and "@" not in str(body["email"]):
        errors = {"email": ["is invalid"]}
    if errors:
        return _json(422, {"errors": errors})
    contact = {
        "id": fake._child_id(),
        "customer_id": row.id,
        "first_name": body.get("firstName", ""),
        "last_name": body.get("lastName", ""),
        "position": body.get("position", ""),
        "phone_1": body.get("phone", ""),
        "phone_2": "",
        "email": body.get("email"),
        "notes": "",
        "buyer": False,
        "shipping": False,
        "billing": False,
    }
    fake._materialise(row)["people"].append(contact)
    if contact["email"]:
        fake._emails[contact["email"].lower()] = row.id
    fake._changed()
    return _json(201, {"contact": contact})


def _create_address(fake: FakeUphance, row: _Row, body: Any) -> web.Response:
    errors = _check(body, _ADDRESS_FIELDS, required=("address1",))
    if errors:
        return _json(422, {"errors": errors})
    address = {
        "id": fake._child_id(),
        "customer_id": row.id,
        "line_1": body["address1"],
        "line_2": body.get("address2", ""),
        "line_3": body.get("address3", ""),
        "city": body.get("city"),
        "state": body.get("state"),
        "country": body.get("country"),
        "postcode": None if body.get("zipCode") is None else str(body["zipCode"]),
        "default_for_shipping": bool(body.get("default_for_shipping", False)),
        "default_for_billing": bool(body.get("default_for_billing", False)),
    }
    record = fake._materialise(row)
    for flag in ("default_for_shipping", "default_for_billing"):
        if address[flag]:
            for other in record["addresses"]:
                other[flag] = False
    record["addresses"].append(address)
    fake._changed()
    return _json(201, {"address": address})


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


async def _body(request: web.Request) -> Any:
    """The request's body: its JSON, else its text (``None`` without one). aiohttp keeps the
    bytes once read, so the middleware and the route both ask."""
    if not request.body_exists:
        return None
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def application(fake: FakeUphance) -> web.Application:
    """The HTTP face of ``fake``: its routes, behind the middleware every request meets."""

    def route(answer: Callable[[web.Request, Any], web.Response]) -> _Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return answer(request, await _body(request))

        return handle

    def action(request: web.Request, body: Any) -> web.Response:
        row = fake._by_id.get(int(request.match_info["id"]))
        act = _ACTIONS.get((request.method, request.match_info["action"]))
        if act is None:
            return _not_found(request.path)
        if row is None:
            return _not_found(f"customer {request.match_info['id']}")
        return act(fake, row, body)

    @web.middleware
    async def gate(request: web.Request, handler: _Handler) -> web.StreamResponse:
        return await _gate(fake, request, handler)

    app = web.Application(middlewares=[gate])
    app.router.add_routes(
        [
            web.post(_OPEN_ROUTE[1], route(lambda r, body: _token_answer(fake, body))),
            web.get("/organisations", route(lambda r, body: _organisations(fake))),
            web.post(
                "/organisations/set_current_org",
                route(lambda r, body: _set_current_org(fake, _bearer(r) or "", body)),
            ),
            web.get("/invoices", route(lambda r, body: _list_invoices(fake, r))),
            web.get("/customers", route(lambda r, body: _list(fake, r))),
            web.post("/customers", route(lambda r, body: _create_customer(fake, body))),
            web.get("/customers/{key}", route(lambda r, body: _show(fake, r.match_info["key"]))),
            web.route("*", r"/customers/{id:\d+}/{action}", route(action)),
            # Anything else: the API's JSON 404, whatever the method.
            web.route("*", "/{tail:.*}", route(lambda r, body: _not_found(r.path))),
        ]
    )
    return app


_ACTIONS: dict[tuple[str, str], Callable[[FakeUphance, _Row, Any], web.Response]] = {
    ("GET", "contacts"): _contacts,
    ("GET", "addresses"): _addresses,
    ("POST", "create_contact"): _create_contact,
    ("POST", "create_address"): _create_address,
}
_TEXT: tuple[type, ...] = (str,)
_CUSTOMER_FIELDS: dict[str, tuple[type, ...]] = {
    "name": _TEXT,
    "vat_number": _TEXT,
    "country": _TEXT,
    "city": _TEXT,
    "customer_type": _TEXT,
    "channelId": (int,),
    "paymentTerm": _TEXT,
}
_CONTACT_FIELDS: dict[str, tuple[type, ...]] = dict.fromkeys(
    ("firstName", "lastName", "position", "phone", "email"), _TEXT
)
_ADDRESS_FIELDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("address1", "address2", "address3", "city", "state", "country"), _TEXT),
    "zipCode": (str, int),
    "default_for_shipping": (bool,),
    "default_for_billing": (bool,),
}


def _check(
    body: Any, fields: Mapping[str, tuple[type, ...]], required: tuple[str, ...]
) -> dict[str, list[str]]:
    """Rails-style validation errors for a JSON body; unknown keys are errors too."""
    if not isinstance(body, dict):
        return {"base": ["the body must be a JSON object"]}
    errors: dict[str, list[str]] = {}
    for name in required:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.setdefault(name, []).append("can't be blank")
    for name, value in body.items():
        kinds = fields.get(name)
        if kinds is None:
            errors.setdefault(name, []).append("is not a known field")
        elif value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            errors.setdefault(name, []).append("has the wrong type")
    return errors


def _page_number(query: Mapping[str, str]) -> int | web.Response:
    """The ``page`` parameter (1 when absent), or the 400 answer for a bad one."""
    text = query.get("page", "1")
    if not text.isascii() or not text.isdigit():
        return _json(400, {"error": "page must be an integer"})
    if int(text) < 1:
        return _json(400, {"error": "page must be at least 1"})
    return int(text)


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


def _invalid_grant(description: str) -> web.Response:
    return _json(400, {"error": "invalid_grant", "error_description": description})


def _redacted(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            key: "<redacted>" if key in ("password", "refresh_token") else value
            for key, value in body.items()
        }
    return body


def _not_found(what: str) -> web.Response:
    return _json(404, {"error": "Not found", "message": f"{what} was not found"})
