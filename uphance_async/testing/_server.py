"""FakeUphance: a tenant of the Uphance Customer API (customers, invoices, sign-in state) and
the life cycle of the real aiohttp.web server that serves it; its routes are in :mod:`_http`."""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
from aiohttp import web

from . import _data
from ._http import FAULTS, Fault, RecordedRequest, application

__all__ = ["FakeUphance"]

_FIRST_ID = 985_700
_EMAIL_ID = re.compile(r"\.(\d+)-\d+@")


@attrs.define(slots=True)
class _Row:
    id: int
    active: bool
    agent: int | None
    record: dict[str, Any] | None = None


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

    def _issue(self) -> tuple[str, str, float]:
        """A new access token and refresh token, remembered; and when they were made."""
        now = time.time()
        access, refresh = _secret(24), _secret(24)
        self._issued[access] = now + self.token_lifetime
        self._refresh_tokens.add(refresh)
        return access, refresh, now

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

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeUphance:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening; ``url`` is set once this returns."""
        app = application(self)
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

    def _child_id(self) -> int:
        self._next_child_id += 1
        return self._next_child_id
