"""Pages decoded straight to models (msgspec) against the thorough path (cattrs), and the codec."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uphance_async import Customer, UphanceClient
from uphance_async._convert import decoded_check, structure
from uphance_async._json import JSONError, TypedPages, dumps, indented, loads
from uphance_async.errors import ResponseValidationError
from uphance_async.testing import FakeUphance, _data

PAGES = TypedPages("customers", Customer, decoded_check(Customer))


def page_body(records: list[Any]) -> bytes:
    meta = {"current_page": 1, "total_pages": 1, "total_count": len(records)}
    return json.dumps({"customers": records, "meta": meta}).encode()


def thorough(body: bytes) -> list[Customer | None]:
    """Each record as the converter makes it (``None`` where it refuses it)."""
    found: list[Customer | None] = []
    for record in loads(body)["customers"]:
        try:
            found.append(structure(record, Customer))
        except ResponseValidationError:
            found.append(None)
    return found


def fast(body: bytes) -> list[Customer] | None:
    data = PAGES.decode(body)
    return None if data is None else list(data["customers"])


def test_the_generated_tenant_decodes_straight_to_equal_models() -> None:
    for first in range(1000, 3000, 100):
        body = page_body([_data.customer(n, seed=4) for n in range(first, first + 100)])
        models = fast(body)
        assert models is not None
        assert models == thorough(body)


_ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]
)
_TIMESTAMP = (
    st.datetimes(timezones=_ZONES).map(lambda moment: moment.isoformat())
    | st.datetimes(timezones=st.just(UTC)).map(
        lambda moment: moment.isoformat().replace("+00:00", "Z")
    )
    | st.sampled_from(
        [
            "2026-03-03T18:42:55.000Z",
            "2026-03-03T18:42:55.1234567Z",
            "2026-03-03t18:42:55z",
            "2026-03-03 18:42:55+0200",
            "2026-03-03",
            "2026-03-03T24:00:00Z",
            " 2026-03-03T18:42:55Z ",
            "",
            "soon",
        ]
    )
    | st.none()
    | st.integers(min_value=0, max_value=2**31)
)
_MONEY = (
    st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=10**9).map(str)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(
        ["NaN", "-Infinity", " inf ", "sNaN", " 1.5", "1_000", "1e5", "1.", "", "  ", "abc"]
    )
    | st.none()
    | st.booleans()
)
_ID = st.integers(min_value=1, max_value=2**62) | st.text("0123456789", min_size=1, max_size=6)
_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=6)


def _record(**optional: Any) -> Any:
    return st.fixed_dictionaries({"id": _ID}, optional=optional)


_CUSTOMER = _record(
    name=_SCALAR,
    orders_count=_SCALAR | st.floats(allow_nan=False, allow_infinity=False),
    last_order=st.none() | _record(confirmed_at=_TIMESTAMP, status=_SCALAR),
    invoices=st.none()
    | st.lists(_record(subtotal=_MONEY, grand_total=_MONEY, total_quantity=_SCALAR), max_size=3),
    outstanding_amounts=st.lists(
        st.fixed_dictionaries({}, optional={"amount": _MONEY, "currency": _SCALAR}), max_size=2
    ),
    people=st.none() | st.lists(_record(buyer=_SCALAR, email=_SCALAR), max_size=2),
    unknown=_SCALAR | st.lists(_SCALAR, max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_CUSTOMER, min_size=1, max_size=4))
def test_a_page_decoded_straight_to_models_equals_the_thorough_path(records: list[Any]) -> None:
    body = page_body(records)
    models = fast(body)
    if models is not None:
        # The strict decoder took the page: the converter reads every record the same way.
        assert thorough(body) == models


@pytest.mark.parametrize(
    "odd",
    [
        {"id": "7"},
        {"id": 1, "invoices": None},
        {"id": 1, "invoices": [{"id": 2, "subtotal": "NaN"}]},
        {"id": 1, "outstanding_amounts": [{"amount": " Infinity "}]},
        # The check walks a page's values field by field: odd ones later in a record too.
        {"id": 1, "invoices": [{"id": 2}, {"id": 3, "amount_outstanding": "-Infinity"}]},
        {"id": 1, "purchase_amounts": [{"amount": "1"}, {"amount": "sNaN", "quantity": 1}]},
        {"id": 1, "last_order": {"id": 2, "confirmed_at": "2026-03-03T18:42:55"}},
        {"id": 1, "last_order": {"id": 2, "confirmed_at": "2026-03-03"}},
        {"id": 1, "orders_count": 7.0},
        {"id": 1, "people": [{"id": 3, "buyer": "yes"}]},
        {"name": "no id"},
    ],
)
def test_odd_values_send_the_page_the_thorough_way(odd: dict[str, Any]) -> None:
    body = page_body([{"id": 9, "name": "plain"}, odd])
    assert fast(body) is None
    assert fast(page_body([{"id": 9, "name": "plain"}])) is not None


def test_timestamps_read_alike_on_both_paths() -> None:
    """A seventh fraction digit rounds, lower-case separators are read: as msgspec does."""
    for text in ("2026-03-03T18:42:55.1234567Z", "2026-03-03t18:42:55z"):
        record = {"id": 1, "last_order": {"id": 2, "confirmed_at": text}}
        models = fast(page_body([record]))
        assert models is not None
        assert models == thorough(page_body([record]))


async def test_streams_mix_straight_and_thorough_pages_in_order(tmp_path: Any) -> None:
    async with FakeUphance(customers=250, page_size=50, seed=5) as server:
        odd = server.ids("all")[60]  # on page 2
        server.patch_customer(odd, {"id": str(odd), "invoices": None, "orders_count": "3"})
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            typed = [c async for c in client.customers.stream(status="all")]
            raw = [r async for r in client.customers.stream(status="all", raw=True)]
    assert [c.id for c in typed] == server.ids("all")
    assert typed == [structure(record, Customer) for record in raw]
    patched = next(c for c in typed if c.id == odd)
    assert patched.orders_count == 3
    assert patched.invoices == ()


def test_the_codec_reads_and_writes_json() -> None:
    assert loads(b' {"a": [1, 2.5, "\\u00e9", null]} ') == {"a": [1, 2.5, "é", None]}
    assert loads(b"123456789012345678901234567890") == 123456789012345678901234567890
    for bad in (b"", b"{", b'{"a":NaN}', b"\xff", b"[" * 5000 + b"]" * 5000):
        with pytest.raises(JSONError):
            loads(bad)
    assert dumps({"a": "é", "b": [1, None]}) == '{"a":"é","b":[1,null]}'.encode()
    assert dumps(Decimal("1.50")) == b'"1.50"'
    assert indented({"a": 1}) == b'{\n  "a": 1\n}'
