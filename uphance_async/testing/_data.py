"""Deterministic, realistic customer records in the shape of the Customer API's examples."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

FIRST_NAMES = (
    "Rosa", "Jonas", "Amelie", "Liam", "Sofia", "Mateo", "Chloe", "Noah", "Ines", "Oskar",
    "Hana", "Luca", "Maya", "Emil", "Zoe", "Arjun", "Freya", "Theo", "Lena", "Rafael",
)  # fmt: skip
LAST_NAMES = (
    "Stork", "Meyer", "Dubois", "Rossi", "Garcia", "Nakamura", "Smith", "Jensen", "Kowalski",
    "Silva", "Okafor", "Novak", "Larsen", "Moreau", "Fischer", "Bianchi", "Tanaka", "Walsh",
)  # fmt: skip
COMPANY_WORDS = (
    "Atelier", "Boutique", "Threads", "Denim", "Studio", "Collective", "Outfitters", "Loom",
    "Tailors", "Label", "Mode", "Apparel", "Garments", "Fashion House", "Closet", "Wardrobe",
)  # fmt: skip
PLACES = (
    ("DE", "Dusseldorf", "NW", "EUR"), ("DE", "Essen", "NW", "EUR"),
    ("FR", "Lyon", "ARA", "EUR"), ("IT", "Milano", "MI", "EUR"),
    ("US", "Miami", "FL", "USD"), ("US", "New York City", "NY", "USD"),
    ("GB", "Leeds", "ENG", "GBP"), ("AU", "Melbourne", "VIC", "AUD"),
    ("DK", "Aarhus", "82", "DKK"), ("JP", "Osaka", "27", "JPY"),
)  # fmt: skip
STREETS = ("Im Stillen Winkel", "Mainstreet", "Rue de la Paix", "Via Roma", "Ocean Drive",
           "Kings Road", "Collins Street", "Strandvejen")  # fmt: skip
CHANNELS = ((10869, "Wholesale", "USD"), (10870, "Retail", "EUR"), (10871, "Online", "GBP"))
ORDER_STATUSES = ("confirmed", "checked_out", "open")
FULFILLMENT = ("shipped", "partially_shipped", "unfulfilled")
FINANCIAL = ("not_paid", "paid", "partially_paid")
AGENTS: tuple[dict[str, Any], ...] = tuple(
    {
        "id": 9171 + n,
        "name": f"{FIRST_NAMES[n * 3 % 20]} {LAST_NAMES[n * 5 % 18]}",
        "email": f"agent{n + 1}@agents.example.com",
        "phone": f"98765432{n:02d}",
        "address": None if n % 2 == 0 else f"{n + 3} {STREETS[n % len(STREETS)]}",
        "city": PLACES[n % len(PLACES)][1],
        "postal_code": f"{12345 + n * 11}",
        "country": PLACES[n % len(PLACES)][0],
        "currency": PLACES[n % len(PLACES)][3],
    }
    for n in range(6)
)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def light(customer_id: int, seed: int) -> tuple[bool, int | None]:
    """(active, agent index or None) for a customer, cheaply, without building the record."""
    mixed = (customer_id * 2654435761 + seed * 40503) & 0xFFFFFFFF
    active = mixed % 5 != 0
    agent = (mixed >> 8) % (len(AGENTS) + 2)
    return active, (agent if agent < len(AGENTS) else None)


def _money(rng: random.Random, low: float, high: float) -> str:
    return str(round(rng.uniform(low, high), 2))


def _timestamp(rng: random.Random) -> str:
    moment = EPOCH + timedelta(seconds=rng.randrange(0, 900 * 86400))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def contact_email(first: str, last: str, customer_id: int, n: int) -> str:
    """The e-mail of the ``n``-th generated contact of a customer (it names the customer id)."""
    return f"{first.lower()}.{last.lower()}.{customer_id}-{n}@example.com"


def customer(customer_id: int, seed: int) -> dict[str, Any]:
    """The full record of a generated customer, as ``GET /customers`` shows it."""
    rng = random.Random(seed * 1_000_003 + customer_id)
    active, agent = light(customer_id, seed)
    country, city, state, currency = PLACES[rng.randrange(len(PLACES))]
    channel_id, channel_name, _ = CHANNELS[rng.randrange(len(CHANNELS))]
    owner_first, owner_last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = (
        f"{owner_last} {rng.choice(COMPANY_WORDS)}"
        if rng.random() < 0.8
        else (f"{owner_first} {owner_last}")
    )
    orders = rng.randrange(0, 40) if active else rng.randrange(0, 3)
    invoices: list[dict[str, Any]] = []
    for n in range(min(orders, rng.randrange(0, 4))):
        subtotal = rng.uniform(20, 900)
        paid = subtotal if rng.random() < 0.4 else 0.0
        invoices.append(
            {
                "id": 824000 + customer_id * 4 + n,
                "subtotal": str(round(subtotal, 2)),
                "total_tax": "0.0",
                "grand_total": str(round(subtotal, 2)),
                "total_quantity": rng.randrange(1, 30),
                "total_paid": str(round(paid, 2)),
                "total_credited": "0.0",
                "total_discounted": None if rng.random() < 0.7 else _money(rng, 1, 20),
                "amount_outstanding": str(round(subtotal - paid, 2)),
                "invoice_currency": currency,
            }
        )
    people = []
    for n in range(rng.randrange(1, 4)):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        people.append(
            {
                "id": 1_090_000 + customer_id * 4 + n,
                "customer_id": customer_id,
                "first_name": first,
                "last_name": last if n else "",
                "position": rng.choice(("Buyer", "Owner", "Accounts", "", "")),
                "phone_1": f"+1202555{rng.randrange(1000, 9999)}",
                "phone_2": None if rng.random() < 0.5 else f"+1202555{rng.randrange(1000, 9999)}",
                "email": contact_email(first, last, customer_id, n),
                "notes": "",
                "buyer": n == 0,
                "shipping": rng.random() < 0.5,
                "billing": n == 0,
            }
        )
    addresses = []
    for n in range(rng.randrange(1, 3)):
        addresses.append(
            {
                "id": 794_000 + customer_id * 2 + n,
                "customer_id": customer_id,
                "line_1": f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
                "line_2": "" if rng.random() < 0.7 else f"Entrance {rng.randrange(1, 9)}",
                "line_3": "",
                "city": city,
                "state": state,
                "country": country,
                "postcode": f"{rng.randrange(10000, 99999)}",
                "default_for_shipping": n == 0,
                "default_for_billing": n == 0,
            }
        )
    outstanding = sum(float(i["amount_outstanding"]) for i in invoices)
    return {
        "id": customer_id,
        "name": name,
        "company_type": "customer",
        "customer_type": rng.choice(("wholesale", "wholesale", "retail")),
        "country": country,
        "city": city,
        "vat_number": None if rng.random() < 0.3 else f"{country}{rng.randrange(100000, 999999)}",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "currency": currency,
        "notes": "" if rng.random() < 0.8 else None,
        "reference": f"{owner_first[0]}{owner_last[0]}{customer_id % 1000}",
        "orders_count": orders,
        "last_order": None
        if orders == 0
        else {
            "id": 862000 + customer_id * 3,
            "confirmed_at": _timestamp(rng),
            "status": rng.choice(ORDER_STATUSES),
            "fulfillment_status": rng.choice(FULFILLMENT),
            "financial_status": rng.choice(FINANCIAL),
        },
        "outstanding_amounts": [{"amount": str(round(outstanding, 2)), "currency": currency}]
        if invoices
        else [],
        "purchase_amounts": [
            {
                "amount": str(round(sum(float(i["grand_total"]) for i in invoices), 2)),
                "quantity": sum(i["total_quantity"] for i in invoices),
                "currency": currency,
            }
        ]
        if invoices
        else [],
        "invoices": invoices,
        "people": people,
        "addresses": addresses,
        "agents": [] if agent is None else [dict(AGENTS[agent])],
        "status": "active" if active else "inactive",
    }
