"""Frozen attrs classes for what the Customer API returns, and for what it accepts.

Response models mirror the API's snake_case field names. Every field but ``id`` defaults to
``None`` (lists to an empty tuple) because older and newer API answers differ in what they carry;
keys the models do not know are ignored. Money is :class:`decimal.Decimal`, timestamps are aware
:class:`datetime.datetime` in UTC.

Request bodies (:class:`NewCustomer`, :class:`NewContact`, :class:`NewAddress`) use the same
snake_case names in Python; the client renames them to the wire's camelCase and leaves out every
field that is ``None``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from ._validate import email_field, positive_int

__all__ = [
    "Address",
    "Agent",
    "Contact",
    "Customer",
    "Invoice",
    "LastOrder",
    "NewAddress",
    "NewContact",
    "NewCustomer",
    "Organisation",
    "OutstandingAmount",
    "PurchaseAmount",
]


@attrs.frozen(slots=True)
class LastOrder:
    """The customer's most recent order."""

    id: int
    confirmed_at: datetime | None = None
    status: str | None = None
    fulfillment_status: str | None = None
    financial_status: str | None = None


@attrs.frozen(slots=True)
class OutstandingAmount:
    """What the customer owes, in one currency."""

    amount: Decimal | None = None
    currency: str | None = None


@attrs.frozen(slots=True)
class PurchaseAmount:
    """What the customer has bought, in one currency."""

    amount: Decimal | None = None
    quantity: int | None = None
    currency: str | None = None


@attrs.frozen(slots=True)
class Invoice:
    """An invoice of the customer, with its totals."""

    id: int
    subtotal: Decimal | None = None
    total_tax: Decimal | None = None
    grand_total: Decimal | None = None
    total_quantity: int | None = None
    total_paid: Decimal | None = None
    total_credited: Decimal | None = None
    total_discounted: Decimal | None = None
    amount_outstanding: Decimal | None = None
    invoice_currency: str | None = None


@attrs.frozen(slots=True)
class Contact:
    """A person at the customer (an entry of ``Customer.people``)."""

    id: int
    customer_id: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    position: str | None = None
    phone_1: str | None = None
    phone_2: str | None = None
    email: str | None = None
    notes: str | None = None
    buyer: bool | None = None
    shipping: bool | None = None
    billing: bool | None = None


@attrs.frozen(slots=True)
class Address:
    """A postal address of the customer."""

    id: int
    customer_id: int | None = None
    line_1: str | None = None
    line_2: str | None = None
    line_3: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postcode: str | None = None
    default_for_shipping: bool | None = None
    default_for_billing: bool | None = None


@attrs.frozen(slots=True)
class Agent:
    """A sales agent who looks after the customer."""

    id: int
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    currency: str | None = None


@attrs.frozen(slots=True)
class Organisation:
    """An organisation the signed-in user belongs to."""

    id: int
    name: str | None = None


@attrs.frozen(slots=True)
class Customer:
    """A customer record, as ``GET /customers`` and ``GET /customers/{id}`` return it."""

    id: int
    name: str | None = None
    company_type: str | None = None
    customer_type: str | None = None
    country: str | None = None
    city: str | None = None
    vat_number: str | None = None
    channel_id: int | None = None
    channel_name: str | None = None
    currency: str | None = None
    notes: str | None = None
    reference: str | None = None
    orders_count: int | None = None
    last_order: LastOrder | None = None
    outstanding_amounts: tuple[OutstandingAmount, ...] = ()
    purchase_amounts: tuple[PurchaseAmount, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    people: tuple[Contact, ...] = ()
    addresses: tuple[Address, ...] = ()
    agents: tuple[Agent, ...] = ()


def _text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None, not {type(value).__name__}")


def _flag(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool or None, not {type(value).__name__}")


def _required_text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty str, not {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        positive_int(attribute.name, value)


def _postcode(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{attribute.name} must be a str, an int or None, not {value!r}")


_WIRE_NAME = "uphance_async.wire_name"
"""The key, in a request model field's metadata, of its name on the wire (camelCase)."""


def _wire(name: str) -> dict[str, str]:
    """Field metadata naming the field ``name`` on the wire."""
    return {_WIRE_NAME: name}


@attrs.frozen(slots=True)
class NewCustomer:
    """The body of ``POST /customers``. Only ``name`` is required."""

    name: str = attrs.field(validator=_required_text)
    vat_number: str | None = attrs.field(default=None, validator=_text)
    country: str | None = attrs.field(default=None, validator=_text)
    city: str | None = attrs.field(default=None, validator=_text)
    customer_type: str | None = attrs.field(default=None, validator=_text)
    channel_id: int | None = attrs.field(
        default=None, validator=_positive_int, metadata=_wire("channelId")
    )
    payment_term: str | None = attrs.field(
        default=None, validator=_text, metadata=_wire("paymentTerm")
    )


@attrs.frozen(slots=True)
class NewContact:
    """The body of ``POST /customers/{id}/create_contact``."""

    first_name: str | None = attrs.field(default=None, validator=_text, metadata=_wire("firstName"))
    last_name: str | None = attrs.field(default=None, validator=_text, metadata=_wire("lastName"))
    position: str | None = attrs.field(default=None, validator=_text)
    phone: str | None = attrs.field(default=None, validator=_text)
    email: str | None = attrs.field(default=None, validator=attrs.validators.optional(email_field))


@attrs.frozen(slots=True)
class NewAddress:
    """The body of ``POST /customers/{id}/create_address``.

    ``line_1..3`` go out as ``address1..3`` and ``postcode`` as ``zipCode``.
    """

    line_1: str | None = attrs.field(default=None, validator=_text, metadata=_wire("address1"))
    line_2: str | None = attrs.field(default=None, validator=_text, metadata=_wire("address2"))
    line_3: str | None = attrs.field(default=None, validator=_text, metadata=_wire("address3"))
    city: str | None = attrs.field(default=None, validator=_text)
    state: str | None = attrs.field(default=None, validator=_text)
    country: str | None = attrs.field(default=None, validator=_text)
    postcode: str | int | None = attrs.field(
        default=None, validator=_postcode, metadata=_wire("zipCode")
    )
    default_for_shipping: bool | None = attrs.field(default=None, validator=_flag)
    default_for_billing: bool | None = attrs.field(default=None, validator=_flag)
