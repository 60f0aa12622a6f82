"""FakeUphance: a real aiohttp.web server that behaves like the Uphance Customer API."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import attrs
from aiohttp import web

from . import _data

__all__ = ["FAULTS", "FakeUphance", "RecordedRequest"]

Fault = Literal["500", "502", "503", "drop", "truncate", "not_json", "slow"]
FAULTS: tuple[Fault, ...] = ("500", "502", "503", "drop", "truncate", "not_json", "slow")
_FIRST_ID = 985_700
_EMAIL_ID = re.compile(r"\.(\d+)-\d+@")
_OPEN_ROUTE = ("POST", "/oauth/token")


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


@attrs.define(slots=True)
class _Row:
    id: int
    active: bool
    agent: int | None
    record: dict[str, Any] | None = None


# The API's own values, spelled here rather than taken from the client: a change in the client
# must not silently change what the fake accepts.
_STATUSES = ("active", "inactive", "all")


def _secret(size: int) -> str:
    """A random secret that never starts with "-": on a command line (``--token -x...``) one
    that does reads as an option, about one time in 32."""
    return "t" + secrets.token_urlsafe(size)


class FakeUphance:
    """A local Uphance Customer API on 127.0.0.1, for tests, benchmarks and demos.

    ``async with FakeUphance(customers=250, page_size=100) as server:`` then point a client at
    ``server.url`` with ``server.token``. It serves every Customer API endpoint with ``meta``
    pagination, the ``by_status`` and ``by_agents_contact`` filters, 401 for a wrong token,
    404 for unknown ids and e-mails and 422 (with a JSON ``errors`` object) for invalid or
    unknown POST fields; created records show up in later GETs. ``GET /invoices`` lists every
    customer's invoices in id order, paginated the same way, with a ``since_id`` filter (a
    second list for ``client.paginate``). Its data are generated from ``seed``, so the same
    arguments give the same tenant.

    Sign-in works as on Uphance: ``POST /oauth/token`` with the password grant (``email``,
    ``password``) or the refresh-token grant issues tokens living ``token_lifetime`` seconds
    (``expire_tokens()`` ends them early), refuses a wrong password or a spent refresh token
    with 400 ``invalid_grant``, and answers 401 to expired tokens. ``GET /organisations`` lists
    ``organisations`` and ``POST /organisations/set_current_org`` selects one per token.
    ``token`` is a token that never expires.

    Switches, all deterministic under ``seed``: ``latency`` (seconds added to every answer);
    ``rate_limit``/``rate_burst`` (a token bucket answering 429, with ``Retry-After`` unless
    ``retry_after=False``);
    ``fault_rate`` (the share of GET requests that get one of ``faults``: a 500, 502 or 503,
    a dropped connection, a truncated body, an HTML body with status 200, or a ``slow_seconds``
    delay); ``cache_pages`` (encode each list page once, for benchmarks). ``on_request`` is
    called with the server before each request is handled, to change the tenant mid-crawl
    with :meth:`insert_customers` and :meth:`delete_customers`.

    ``requests`` records every request, ``max_in_flight`` the most handled at once.
    """

    def __init__(
        self,
        customers: int = 250,
        *,
        page_size: int = 100,
        token: str | None = None,
        email: str = "demo@example.com",
        password: str | None = None,
        token_lifetime: float = 7 * 86400,
        organisations: Mapping[int, str] | None = None,
        seed: int = 0,
        latency: float = 0.0,
        rate_limit: float | None = None,
        rate_burst: int | None = None,
        retry_after: bool = True,
        fault_rate: float = 0.0,
        faults: tuple[Fault, ...] = FAULTS,
        slow_seconds: float = 2.0,
        cache_pages: bool = False,
        record_requests: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if customers < 0 or page_size < 1:
            raise ValueError("customers must be >= 0 and page_size >= 1")
        unknown = set(faults) - set(FAULTS)
        if unknown or not 0 <= fault_rate <= 1:
            raise ValueError(f"faults must be among {FAULTS} and fault_rate in [0, 1]")
        self.page_size = page_size
        self.token = token if token is not None else _secret(24)
        self.email = email
        self.password = password if password is not None else _secret(12)
        self.token_lifetime = token_lifetime
        self.organisations = dict(organisations or {9579: "Uphance Demo", 9580: "Second Label"})
        self.token_requests = 0
        self._issued: dict[str, float] = {}
        self._refresh_tokens: set[str] = set()
        self._organisation_of: dict[str, int] = {}
        self.seed = seed
        self.latency = latency
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst if rate_burst is not None else max(1, int(rate_limit or 1))
        self.retry_after = retry_after
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.slow_seconds = slow_seconds
        self.cache_pages = cache_pages
        self.record_requests = record_requests
        self.on_request: Callable[[FakeUphance], None] | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0
        self.faults_injected = 0
        self._host = host
        self._port = port
        self._rows: list[_Row] = []
        self._by_id: dict[int, _Row] = {}
        self._emails: dict[str, int] = {}
        self._next_id = _FIRST_ID
        self._next_child_id = 5_000_000_000
        self._faults_rng = random.Random(seed)
        self._tokens = float(self.rate_burst)
        self._refilled = time.monotonic()
        self._pages: dict[tuple[str, str, int], bytes] = {}
        self._filtered: dict[tuple[str, str], list[_Row]] = {}
        self._invoices: list[dict[str, Any]] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.insert_customers(customers, at=0)

    # -- the tenant ---------------------------------------------------------------------------

    def insert_customers(self, count: int, *, at: int | None = None) -> list[int]:
        """Add ``count`` generated customers at list position ``at`` (the end when ``None``)."""
        rows = []
        for _ in range(count):
            active, agent = _data.light(self._next_id, self.seed)
            rows.append(_Row(self._next_id, active, agent))
            self._next_id += 1
        position = len(self._rows) if at is None else at
        self._rows[position:position] = rows
        self._by_id.update((row.id, row) for row in rows)
        self._changed()
        return [row.id for row in rows]

    def delete_customers(self, count: int, *, at: int = 0) -> list[int]:
        """Remove ``count`` customers from list position ``at``; their ids are returned."""
        removed = self._rows[at : at + count]
        del self._rows[at : at + count]
        for row in removed:
            del self._by_id[row.id]
        self._changed()
        return [row.id for row in removed]

    def change_every(
        self,
        requests: int,
        *,
        delete: int = 0,
        create: int = 0,
        at: Literal["front", "end"] = "front",
        times: int | None = None,
    ) -> None:
        """Change the list while clients crawl it: every ``requests``-th request (before it is
        answered), ``delete`` customers and then ``create`` new ones at the front or the end of
        the list, ``times`` times in all (``None``: without end). Replaces ``on_request``."""
        seen = changes = 0

        def change(server: FakeUphance) -> None:
            nonlocal seen, changes
            seen += 1
            if seen % requests or (times is not None and changes >= times):
                return
            changes += 1
            server.delete_customers(delete, at=0 if at == "front" else len(server._rows) - delete)
            server.insert_customers(create, at=0 if at == "front" else None)

        self.on_request = change

    def patch_customer(self, customer_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Overwrite fields of a customer's record (to serve odd or broken data); the record."""
        record = self._materialise(self._by_id[customer_id])
        record.update(changes)
        for person in record.get("people") or []:
            if isinstance(person, dict) and isinstance(person.get("email"), str):
                self._emails[person["email"].lower()] = customer_id
        self._changed()
        return record

    @property
    def customer_ids(self) -> list[int]:
        """Every customer id, in list order."""
        return [row.id for row in self._rows]

    def ids(self, status: str = "active", agent_contact: str | None = None) -> list[int]:
        """The ids ``GET /customers`` lists (all pages) for these filters, in order."""
        return [row.id for row in self._filter(status, agent_contact or "")]

    def customer(self, customer_id: int) -> dict[str, Any]:
        """The full record of a customer, as the API shows it (``KeyError`` if unknown)."""
        return self._record(self._by_id[customer_id])

    def _record(self, row: _Row) -> dict[str, Any]:
        if row.record is not None:
            return row.record
        return _data.customer(row.id, self.seed)

    def _materialise(self, row: _Row) -> dict[str, Any]:
        if row.record is None:
            row.record = _data.customer(row.id, self.seed)
        return row.record

    def _changed(self) -> None:
        self._pages.clear()
        self._filtered.clear()
        self._invoices = None

    def _filter(self, status: str, agent_contact: str) -> list[_Row]:
        key = (status, agent_contact)
        rows = self._filtered.get(key)
        if rows is None:
            agents = {
                index
                for index, agent in enumerate(_data.AGENTS)
                if agent_contact in (agent["email"], agent["phone"])
            }
            rows = [
                row
                for row in self._rows
                if (status == "all" or row.active == (status == "active"))
                and (not agent_contact or row.agent in agents)
            ]
            self._filtered[key] = rows
        return rows

    def _find_by_email(self, email: str) -> _Row | None:
        customer_id = self._emails.get(email.lower())
        if customer_id is None and (match := _EMAIL_ID.search(email)):
            customer_id = int(match.group(1))
        row = self._by_id.get(customer_id) if customer_id is not None else None
        if row is None:
            return None
        people = self._record(row).get("people") or []
        if any((person.get("email") or "").lower() == email.lower() for person in people):
            return row
        return None

    # -- sign-in ------------------------------------------------------------------------------

    def expire_tokens(self, *, revoke_refresh_tokens: bool = False) -> None:
        """Make every token issued so far expired (the static ``token`` stays valid), and
        with ``revoke_refresh_tokens`` refuse their refresh tokens too."""
        for token in self._issued:
            self._issued[token] = 0.0
        if revoke_refresh_tokens:
            self._refresh_tokens.clear()

    def _refusal(self, token: str | None) -> str | None:
        """Why ``token`` may not be used, or None when it may."""
        if token is None:
            return "An access token is required"
        if token == self.token:
            return None
        expires = self._issued.get(token)
        if expires is None:
            return "The access token is invalid"
        if expires <= time.time():
            return "The access token expired"
        return None

    def _token_answer(self, body: Any) -> web.Response:
        self.token_requests += 1
        grant = body.get("grant_type") if isinstance(body, dict) else None
        if grant == "password":
            if body.get("email") != self.email or body.get("password") != self.password:
                return _invalid_grant("The e-mail or password is not correct")
        elif grant == "refresh_token":
            refresh = body.get("refresh_token")
            if refresh not in self._refresh_tokens:
                return _invalid_grant("The refresh token is invalid, expired or already used")
            self._refresh_tokens.discard(refresh)
        else:
            return _json(400, {"error": "unsupported_grant_type"})
        now = time.time()
        access, refresh = _secret(24), _secret(24)
        self._issued[access] = now + self.token_lifetime
        self._refresh_tokens.add(refresh)
        return _json(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "refresh_token": refresh,
                "created_at": now,
            },
        )

    def _organisations(self) -> web.Response:
        listed = [{"id": key, "name": name} for key, name in self.organisations.items()]
        return _json(200, {"organisations": listed})

    def _set_current_org(self, token: str, body: Any) -> web.Response:
        chosen = body.get("organizationId") if isinstance(body, dict) else None
        if chosen not in self.organisations:
            return _json(422, {"errors": {"organizationId": ["is not one of yours"]}})
        self._organisation_of[token] = chosen
        return _json(200, {"Status": "Updated"})

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeUphance:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening; ``url`` is set once this returns."""
        app = _application(self)
        # Stopping waits at most a second for answers under way (a slow fault, a client that
        # keeps its connection): a test server must stop promptly when told to.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- HTTP ---------------------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """What every request meets before its route: latency, sign-in, the rate budget and
        the injected faults; and its record afterwards."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        body: Any = None
        fault: str | None = None
        presented = _bearer(request)
        refusal = (
            None if (request.method, request.path) == _OPEN_ROUTE else self._refusal(presented)
        )
        authorized = refusal is None
        organisation = self._organisation_of.get(presented) if presented else None
        response: web.StreamResponse
        try:
            if self.on_request is not None:
                self.on_request(self)
            body = await _body(request)
            if self.latency:
                await asyncio.sleep(self.latency)
            if refusal is not None:
                response = _json(
                    401,
                    {"error": "invalid_token", "error_description": refusal},
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            elif (throttled := self._throttle()) is not None:
                response = throttled
            else:
                fault = self._pick_fault(request.method)
                if fault is None or fault == "slow":
                    if fault == "slow":
                        await asyncio.sleep(self.slow_seconds)
                    response = await handler(request)
                else:
                    response = await self._fault(request, fault)
            return response
        finally:
            self.in_flight -= 1
            if self.record_requests:
                self.requests.append(
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

    def _throttle(self) -> web.Response | None:
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        self._tokens = min(
            float(self.rate_burst), self._tokens + (now - self._refilled) * self.rate_limit
        )
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        self.throttled += 1
        if not self.retry_after:
            return _json(429, {"error": "Too many requests"})
        wait = max(1, math.ceil((1 - self._tokens) / self.rate_limit))
        return _json(429, {"error": "Too many requests"}, {"Retry-After": str(wait)})

    def _pick_fault(self, method: str) -> Fault | None:
        if method != "GET" or not self.fault_rate or not self.faults:
            return None
        if self._faults_rng.random() >= self.fault_rate:
            return None
        self.faults_injected += 1
        return self._faults_rng.choice(self.faults)

    async def _fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
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

    def _list(self, request: web.Request) -> web.Response:
        query = request.query
        status = query.get("by_status", "active")
        if status not in _STATUSES:
            return _json(400, {"error": f"by_status must be one of {', '.join(_STATUSES)}"})
        page = _page_number(query)
        if isinstance(page, web.Response):
            return page
        agent = query.get("by_agents_contact", "")
        key = (status, agent, page)
        encoded = self._pages.get(key) if self.cache_pages else None
        if encoded is None:
            rows = self._filter(status, agent)
            chunk = rows[(page - 1) * self.page_size : page * self.page_size]
            records = [self._record(row) for row in chunk]
            encoded = self._page_body("customers", records, page, len(rows))
            if self.cache_pages:
                self._pages[key] = encoded
        return web.Response(body=encoded, content_type="application/json")

    def _page_body(self, key: str, records: list[Any], page: int, total: int) -> bytes:
        total_pages = math.ceil(total / self.page_size)
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

    def invoices(self, since_id: int = 0) -> list[dict[str, Any]]:
        """Every invoice of every customer with an id above ``since_id``, in id order, as
        ``GET /invoices`` lists them (each with its ``customer_id``)."""
        if self._invoices is None:
            self._invoices = sorted(
                (
                    {**invoice, "customer_id": row.id}
                    for row in self._rows
                    for invoice in self._record(row).get("invoices") or []
                ),
                key=lambda invoice: int(invoice["id"]),
            )
        return [invoice for invoice in self._invoices if int(invoice["id"]) > since_id]

    def _list_invoices(self, request: web.Request) -> web.Response:
        page = _page_number(request.query)
        if isinstance(page, web.Response):
            return page
        since = request.query.get("since_id", "0")
        if not since.isdigit():
            return _json(400, {"error": "since_id must be a whole number"})
        found = self.invoices(int(since))
        chunk = found[(page - 1) * self.page_size : page * self.page_size]
        body = self._page_body("invoices", chunk, page, len(found))
        return web.Response(body=body, content_type="application/json")

    def _show(self, key: str) -> web.Response:
        row = self._by_id.get(int(key)) if key.isdigit() else self._find_by_email(key)
        if row is None:
            return _not_found(f"customer {key}")
        return _json(200, {"customer": self._record(row)})

    def _create_customer(self, body: Any) -> web.Response:
        errors = _check(body, _CUSTOMER_FIELDS, required=("name",))
        if errors:
            return _json(422, {"errors": errors})
        (customer_id,) = self.insert_customers(1)
        row = self._by_id[customer_id]
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

    def _contacts(self, row: _Row, body: Any) -> web.Response:
        return _json(200, {"contacts": self._record(row)["people"]})

    def _addresses(self, row: _Row, body: Any) -> web.Response:
        return _json(200, {"addresses": self._record(row)["addresses"]})

    def _child_id(self) -> int:
        self._next_child_id += 1
        return self._next_child_id

    def _create_contact(self, row: _Row, body: Any) -> web.Response:
        errors = _check(body, _CONTACT_FIELDS, required=())
        if not errors and not any(body.get(k) for k in ("firstName", "lastName", "email")):
            errors = {"base": ["firstName, lastName or email must be given"]}
        if not errors and body.get("email") and "@" not in str(body["email"]):
            errors = {"email": ["is invalid"]}
        if errors:
            return _json(422, {"errors": errors})
        contact = {
            "id": self._child_id(),
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
        self._materialise(row)["people"].append(contact)
        if contact["email"]:
            self._emails[contact["email"].lower()] = row.id
        self._changed()
        return _json(201, {"contact": contact})

    def _create_address(self, row: _Row, body: Any) -> web.Response:
        errors = _check(body, _ADDRESS_FIELDS, required=("address1",))
        if errors:
            return _json(422, {"errors": errors})
        address = {
            "id": self._child_id(),
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
        record = self._materialise(row)
        for flag in ("default_for_shipping", "default_for_billing"):
            if address[flag]:
                for other in record["addresses"]:
                    other[flag] = False
        record["addresses"].append(address)
        self._changed()
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


def _application(fake: FakeUphance) -> web.Application:
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

    app = web.Application(middlewares=[fake._gate])
    app.router.add_routes(
        [
            web.post(_OPEN_ROUTE[1], route(lambda r, body: fake._token_answer(body))),
            web.get("/organisations", route(lambda r, body: fake._organisations())),
            web.post(
                "/organisations/set_current_org",
                route(lambda r, body: fake._set_current_org(_bearer(r) or "", body)),
            ),
            web.get("/invoices", route(lambda r, body: fake._list_invoices(r))),
            web.get("/customers", route(lambda r, body: fake._list(r))),
            web.post("/customers", route(lambda r, body: fake._create_customer(body))),
            web.get("/customers/{key}", route(lambda r, body: fake._show(r.match_info["key"]))),
            web.route("*", r"/customers/{id:\d+}/{action}", route(action)),
            # Anything else: the API's JSON 404, whatever the method.
            web.route("*", "/{tail:.*}", route(lambda r, body: _not_found(r.path))),
        ]
    )
    return app


_ACTIONS: dict[tuple[str, str], Callable[[FakeUphance, _Row, Any], web.Response]] = {
    ("GET", "contacts"): FakeUphance._contacts,
    ("GET", "addresses"): FakeUphance._addresses,
    ("POST", "create_contact"): FakeUphance._create_contact,
    ("POST", "create_address"): FakeUphance._create_address,
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
