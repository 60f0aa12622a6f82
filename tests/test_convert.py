"""Decoding answers and encoding request bodies, without a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uphance_async import (
    Checkpoint,
    Customer,
    NewAddress,
    NewContact,
    NewCustomer,
    converter,
)
from uphance_async._convert import body, structure
from uphance_async.errors import ResponseValidationError
from uphance_async.testing import _data

SEED_EXAMPLE: dict[str, Any] = {
    "id": 985765,
    "name": "Rosa Stork",
    "company_type": "customer",
    "customer_type": "wholesale",
    "country": "DE",
    "city": "DusselDorf",
    "vat_number": "A555",
    "channel_id": 10869,
    "channel_name": "Wholesale",
    "currency": "USD",
    "notes": "",
    "reference": "RS1",
    "orders_count": 29,
    "last_order": {
        "id": 862269,
        "confirmed_at": "2026-03-03T18:42:55.000Z",
        "status": "confirmed",
        "fulfillment_status": "shipped",
        "financial_status": "not_paid",
    },
    "outstanding_amounts": [{"amount": "355.18", "currency": "USD"}],
    "purchase_amounts": [{"amount": "355.18", "quantity": 7, "currency": "USD"}],
    "invoices": [
        {
            "id": 824375,
            "subtotal": "97.78",
            "total_tax": "0.0",
            "grand_total": "97.78",
            "total_quantity": 2,
            "total_paid": "0.0",
            "total_credited": "0.0",
            "total_discounted": None,
            "amount_outstanding": "97.78",
            "invoice_currency": "USD",
        }
    ],
    "people": [
        {
            "id": 1090940,
            "customer_id": 985765,
            "first_name": "Ship",
            "last_name": "",
            "position": "",
            "phone_1": "+12025550137",
            "phone_2": "+12025550137",
            "email": "ship@example.com",
            "notes": "",
            "buyer": False,
            "shipping": True,
            "billing": True,
        }
    ],
    "addresses": [
        {
            "id": 794949,
            "customer_id": 985765,
            "line_1": "Im Stillen Winkel 7",
            "line_2": "",
            "line_3": "",
            "city": "Essen",
            "state": "NW",
            "country": "DE",
            "postcode": "45149",
            "default_for_shipping": True,
            "default_for_billing": True,
        }
    ],
    "agents": [
        {
            "id": 9171,
            "name": "An agent",
            "email": "agent@example.com",
            "phone": "9876543210",
            "address": None,
            "city": "DC",
            "postal_code": "12345",
            "country": "US",
            "currency": "USD",
        }
    ],
}


def test_the_seed_example_is_read_field_by_field() -> None:
    customer = structure(SEED_EXAMPLE, Customer)
    assert customer.id == 985765
    assert customer.channel_id == 10869
    assert customer.last_order is not None
    assert customer.last_order.confirmed_at == datetime(2026, 3, 3, 18, 42, 55, tzinfo=UTC)
    assert customer.outstanding_amounts[0].amount == Decimal("355.18")
    assert customer.purchase_amounts[0].quantity == 7
    invoice = customer.invoices[0]
    assert invoice.total_discounted is None
    assert invoice.subtotal == Decimal("97.78")
    assert customer.people[0].billing is True
    assert customer.people[0].buyer is False
    assert customer.addresses[0].postcode == "45149"
    assert customer.agents[0].address is None
    assert isinstance(customer.invoices, tuple)


def test_models_are_frozen_and_slotted() -> None:
    customer = structure(SEED_EXAMPLE, Customer)
    with pytest.raises(AttributeError):
        customer.name = "other"  # type: ignore[misc]
    assert not hasattr(customer, "__dict__")


def test_only_the_id_is_required() -> None:
    customer = structure({"id": 1}, Customer)
    assert customer == Customer(id=1)
    assert customer.people == ()
    assert customer.last_order is None


def test_nulls_and_unknown_keys_are_accepted() -> None:
    data = dict.fromkeys(SEED_EXAMPLE, None) | {"id": 5, "brand_new_field": {"x": 1}}
    customer = structure(data, Customer)
    assert customer.id == 5
    assert customer.invoices == ()
    assert customer.name is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.50", Decimal("12.50")),
        (12, Decimal(12)),
        (0.1, Decimal("0.1")),
        ("", None),
        (None, None),
        ("1e3", Decimal("1E+3")),
    ],
)
def test_money_becomes_decimal(raw: Any, expected: Decimal | None) -> None:
    data = {"amount": raw, "currency": "EUR"}
    amount = structure({"id": 1, "outstanding_amounts": [data]}, Customer).outstanding_amounts[0]
    assert amount.amount == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-03T18:42:55.000Z", datetime(2026, 3, 3, 18, 42, 55, tzinfo=UTC)),
        ("2026-03-03T18:42:55", datetime(2026, 3, 3, 18, 42, 55, tzinfo=UTC)),
        (
            "2026-03-03T20:42:55+02:00",
            datetime(2026, 3, 3, 20, 42, 55, tzinfo=timezone(timedelta(hours=2))),
        ),
        (1772563375, datetime(2026, 3, 3, 18, 42, 55, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_datetimes(raw: Any, expected: datetime) -> None:
    order = structure({"id": 1, "last_order": {"id": 2, "confirmed_at": raw}}, Customer).last_order
    assert order is not None
    assert order.confirmed_at == expected
    assert order.confirmed_at is not None
    assert order.confirmed_at.tzinfo is not None


def test_numbers_and_booleans_in_strings_are_read() -> None:
    data = {
        "id": "7",
        "orders_count": "29",
        "people": [{"id": 1, "buyer": "true", "billing": 0, "shipping": "no"}],
        "reference": 42,
    }
    customer = structure(data, Customer)
    assert customer.id == 7
    assert customer.orders_count == 29
    assert customer.reference == "42"
    person = customer.people[0]
    assert (person.buyer, person.billing, person.shipping) == (True, False, False)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"name": "no id"}, "$.id"),
        ({"id": "abc"}, "$.id"),
        (
            {"id": 1, "invoices": [{"id": 1}, {"id": 2, "subtotal": "lots"}]},
            "$.invoices[1].subtotal",
        ),
        ({"id": 1, "people": [{"id": 1, "buyer": "maybe"}]}, "$.people[0].buyer"),
        (
            {"id": 1, "last_order": {"id": 1, "confirmed_at": "yesterday"}},
            "$.last_order.confirmed_at",
        ),
        ({"id": 1, "addresses": "none"}, "$.addresses"),
        ({"id": 1, "name": {"first": "x"}}, "$.name"),
        ({"id": 1, "outstanding_amounts": [{"amount": "NaN"}]}, "$.outstanding_amounts[0].amount"),
        (
            {"id": 1, "outstanding_amounts": [{"amount": "-Infinity"}]},
            "$.outstanding_amounts[0].amount",
        ),
    ],
)
def test_bad_values_name_their_json_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ResponseValidationError) as caught:
        structure(data, Customer)
    assert caught.value.path == path
    assert path in str(caught.value)


def test_a_body_that_is_not_an_object_is_a_typed_error() -> None:
    with pytest.raises(ResponseValidationError):
        structure(["not", "an", "object"], Customer)


def test_request_bodies_use_wire_names_and_omit_none() -> None:
    assert body(NewCustomer(name="Acme")) == {"name": "Acme"}
    assert body(
        NewCustomer(
            name="Acme",
            country="US",
            city="Miami",
            vat_number="XE554",
            customer_type="wholesale",
            channel_id=6932,
            payment_term="PIA",
        )
    ) == {
        "name": "Acme",
        "country": "US",
        "city": "Miami",
        "vat_number": "XE554",
        "customer_type": "wholesale",
        "channelId": 6932,
        "paymentTerm": "PIA",
    }
    assert body(NewContact(first_name="Jon", last_name="Doe", phone="+1")) == {
        "firstName": "Jon",
        "lastName": "Doe",
        "phone": "+1",
    }
    assert body(
        NewAddress(line_1="a", line_2="b", line_3="c", postcode="10013", default_for_billing=False)
    ) == {
        "address1": "a",
        "address2": "b",
        "address3": "c",
        "zipCode": "10013",
        "default_for_billing": False,
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: NewCustomer(name=""),
        lambda: NewCustomer(name="  "),
        lambda: NewCustomer(name=None),  # type: ignore[arg-type]
        lambda: NewCustomer(name="x", channel_id=0),
        lambda: NewCustomer(name="x", channel_id="6932"),  # type: ignore[arg-type]
        lambda: NewCustomer(name="x", country=1),  # type: ignore[arg-type]
        lambda: NewContact(email="not an e-mail"),
        lambda: NewAddress(default_for_billing="yes"),  # type: ignore[arg-type]
        lambda: NewAddress(postcode=1.5),  # type: ignore[arg-type]
    ],
)
def test_invalid_request_bodies_fail_at_construction(make: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()


_text = st.none() | st.text(max_size=20)
_flag = st.none() | st.booleans()


@given(
    st.builds(
        NewCustomer,
        name=st.text(min_size=1, max_size=20).filter(str.strip),
        vat_number=_text,
        country=_text,
        city=_text,
        customer_type=_text,
        channel_id=st.none() | st.integers(min_value=1, max_value=2**40),
        payment_term=_text,
    )
    | st.builds(
        NewContact,
        first_name=_text,
        last_name=_text,
        position=_text,
        phone=_text,
        email=st.none() | st.emails(),
    )
    | st.builds(
        NewAddress,
        line_1=_text,
        line_2=_text,
        line_3=_text,
        city=_text,
        state=_text,
        country=_text,
        postcode=st.none() | st.text(max_size=10) | st.integers(min_value=0, max_value=99999),
        default_for_shipping=_flag,
        default_for_billing=_flag,
    )
)
def test_request_bodies_round_trip(value: NewCustomer | NewContact | NewAddress) -> None:
    wire = body(value)
    assert None not in wire.values()
    assert not any(
        "_" in key
        for key in wire
        if key not in {"vat_number", "customer_type", "default_for_shipping", "default_for_billing"}
    )
    assert converter.structure(wire, type(value)) == value


def test_generated_records_are_valid_customers() -> None:
    for customer_id in range(1000, 1200):
        record = _data.customer(customer_id, seed=3)
        customer = structure(record, Customer)
        assert customer.id == customer_id
        assert customer.people


def test_checkpoints_round_trip_through_json() -> None:
    import json

    checkpoint = Checkpoint(next_page=4, params={"by_status": "all"}, items_yielded=300)
    text = json.dumps(converter.unstructure(checkpoint))
    assert converter.structure(json.loads(text), Checkpoint) == checkpoint


def _thorough(data: Any) -> Customer:
    from cattrs.gen import make_dict_structure_fn

    result: Customer = make_dict_structure_fn(Customer, converter)(data, Customer)
    return result


@pytest.mark.parametrize("customer_id", range(2000, 2300, 7))
def test_the_fast_path_agrees_with_cattrs(customer_id: int) -> None:
    record = _data.customer(customer_id, seed=9)
    assert structure(record, Customer) == _thorough(record)


_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats()


@given(
    st.fixed_dictionaries(
        {"id": st.integers(min_value=1) | st.text(alphabet="0123456789", min_size=1, max_size=5)},
        optional={
            "name": _scalar,
            "orders_count": _scalar,
            "last_order": st.none()
            | st.fixed_dictionaries({"id": st.integers(), "status": _scalar}),
            "invoices": st.none()
            | st.lists(st.fixed_dictionaries({"id": st.integers(), "subtotal": _scalar})),
            "people": st.none()
            | st.lists(st.fixed_dictionaries({"id": st.integers(), "buyer": _scalar})),
        },
    )
)
def test_fast_and_thorough_paths_agree_on_odd_input(data: dict[str, Any]) -> None:
    try:
        expected: Customer | None = _thorough(data)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(ResponseValidationError):
            structure(data, Customer)
    else:
        assert structure(data, Customer) == expected


def test_generated_structuring_code_shows_in_tracebacks() -> None:
    import linecache

    from uphance_async._convert import structure_hook

    structure_hook(Customer)
    lines = linecache.getlines("<fast structure uphance_async.models.Customer>")
    assert lines[0].startswith("def fast(o):")
    assert any("cl(" in line for line in lines)
