"""Every Customer API endpoint and filter, through the real fake server on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from uphance_async import (
    Address,
    Contact,
    Customer,
    NewAddress,
    NewContact,
    NewCustomer,
    UphanceClient,
)
from uphance_async.errors import (
    AuthenticationError,
    NotFoundError,
    UnprocessableEntityError,
)
from uphance_async.testing import FakeUphance
from uphance_async.testing._data import AGENTS


async def test_page_and_meta(client: UphanceClient, server: FakeUphance) -> None:
    page = await client.customers.page(2, status="all")
    assert [c.id for c in page.items] == server.ids("all")[100:200]
    assert page.meta.current_page == 2
    assert page.meta.next_page == 3
    assert page.meta.prev_page == 1
    assert page.meta.total_pages == 3
    assert page.meta.total_count == 250
    assert all(isinstance(c, Customer) for c in page.items)


async def test_last_page_has_no_next(client: UphanceClient, server: FakeUphance) -> None:
    page = await client.customers.page(3, status="all")
    assert len(page.items) == 50
    assert page.meta.next_page is None


@pytest.mark.parametrize("status", [None, "active", "inactive", "all"])
async def test_status_filter(
    client: UphanceClient, server: FakeUphance, status: str | None
) -> None:
    ids = [c.id async for c in client.customers.stream(status=status)]
    assert ids == server.ids(status or "active")
    sent = {r.query.get("by_status") for r in server.requests}
    assert sent == {status}
    if status == "inactive":
        assert 0 < len(ids) < 250


@pytest.mark.parametrize("contact", [AGENTS[1]["email"], AGENTS[2]["phone"]])
async def test_agent_contact_filter(
    client: UphanceClient, server: FakeUphance, contact: str
) -> None:
    customers = [c async for c in client.customers.stream(status="all", agent_contact=contact)]
    assert [c.id for c in customers] == server.ids("all", contact)
    assert customers
    assert all(contact in (c.agents[0].email, c.agents[0].phone) for c in customers)
    assert all(r.query["by_agents_contact"] == contact for r in server.requests)


async def test_unknown_agent_gives_an_empty_list(client: UphanceClient) -> None:
    page = await client.customers.page(1, agent_contact="nobody@agents.example.com")
    assert page.items == ()
    assert [c async for c in client.customers.stream(agent_contact="nobody@example.com")] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "archived"}, "status"),
        ({"agent_contact": "not a contact"}, "agent_contact"),
        ({"agent_contact": ""}, "agent_contact"),
    ],
)
async def test_bad_filters_fail_before_any_request(
    client: UphanceClient, server: FakeUphance, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await client.customers.page(1, **kwargs)
    with pytest.raises(ValueError, match=message):
        client.customers.stream(**kwargs)
    with pytest.raises(ValueError, match="page"):
        await client.customers.page(0)
    assert server.requests == []


async def test_get_by_id(client: UphanceClient, server: FakeUphance) -> None:
    wanted = server.ids("all")[17]
    customer = await client.customers.get(wanted)
    record = server.customer(wanted)
    assert customer.id == wanted
    assert customer.name == record["name"]
    assert [p.email for p in customer.people] == [p["email"] for p in record["people"]]
    for invoice, raw in zip(customer.invoices, record["invoices"], strict=True):
        assert invoice.grand_total == Decimal(raw["grand_total"])
    assert server.requests[-1].path == f"/customers/{wanted}"


async def test_get_by_email(client: UphanceClient, server: FakeUphance) -> None:
    wanted = server.ids("all")[42]
    email = server.customer(wanted)["people"][-1]["email"]
    assert (await client.customers.get_by_email(email)).id == wanted


async def test_unknown_id_and_email_are_not_found(client: UphanceClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.customers.get(1)
    assert caught.value.status == 404
    assert caught.value.path == "/customers/1"
    with pytest.raises(NotFoundError):
        await client.customers.get_by_email("nobody.985700-0@example.com")
    with pytest.raises(NotFoundError):
        await client.customers.contacts(1)
    with pytest.raises(NotFoundError):
        await client.customers.addresses(1)


@pytest.mark.parametrize("bad", [0, -3, "12", 1.5, True, None])
async def test_ids_must_be_positive_ints(client: UphanceClient, bad: object) -> None:
    for call in (client.customers.get, client.customers.contacts, client.customers.addresses):
        with pytest.raises(ValueError, match="customer id"):
            await call(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["", "plain", "two@@at.com", "spa ce@x.com", "crlf@x.com\r\nX-Evil: 1", "@x.com", 5]
)
async def test_emails_must_look_like_emails(
    client: UphanceClient, server: FakeUphance, bad: object
) -> None:
    with pytest.raises(ValueError, match="e-mail"):
        await client.customers.get_by_email(bad)  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize(
    "email",
    ["a/../b?x@y.com", "a#frag@y.com", "a%2Fb@y.com", "jöhn@exämple.com", "a;b=c&d@y.com"],
)
async def test_odd_emails_stay_in_their_path_segment(
    client: UphanceClient, server: FakeUphance, email: str
) -> None:
    with pytest.raises(NotFoundError):
        await client.customers.get_by_email(email)
    request = server.requests[-1]
    assert request.path == f"/customers/{email}"
    assert request.query == {}


async def test_contacts_and_addresses(client: UphanceClient, server: FakeUphance) -> None:
    wanted = server.ids("all")[3]
    record = server.customer(wanted)
    contacts = await client.customers.contacts(wanted)
    addresses = await client.customers.addresses(wanted)
    assert all(isinstance(c, Contact) for c in contacts)
    assert [c.id for c in contacts] == [p["id"] for p in record["people"]]
    assert all(isinstance(a, Address) for a in addresses)
    assert [a.line_1 for a in addresses] == [a["line_1"] for a in record["addresses"]]


async def test_create_customer_contact_and_address(
    client: UphanceClient, server: FakeUphance
) -> None:
    new = await client.customers.create(
        NewCustomer(
            name="Acme",
            country="US",
            city="Miami",
            vat_number="XE554",
            customer_type="wholesale",
            channel_id=10869,
            payment_term="PIA",
        )
    )
    assert server.requests[-1].body == {
        "name": "Acme",
        "country": "US",
        "city": "Miami",
        "vat_number": "XE554",
        "customer_type": "wholesale",
        "channelId": 10869,
        "paymentTerm": "PIA",
    }
    assert (new.name, new.city, new.channel_id, new.channel_name) == (
        "Acme",
        "Miami",
        10869,
        "Wholesale",
    )
    person = await client.customers.create_contact(
        new.id,
        NewContact(
            first_name="Jon",
            last_name="Doe",
            position="CEO",
            phone="+305-610-0517",
            email="jon@example.com",
        ),
    )
    assert server.requests[-1].body == {
        "firstName": "Jon",
        "lastName": "Doe",
        "position": "CEO",
        "phone": "+305-610-0517",
        "email": "jon@example.com",
    }
    assert (person.first_name, person.customer_id) == ("Jon", new.id)
    address = await client.customers.create_address(
        new.id,
        NewAddress(
            line_1="Mainstreet 5",
            line_2="Entrance 5",
            line_3="Floor 10",
            city="New York City",
            state="NY",
            country="US",
            postcode="10013",
            default_for_shipping=True,
            default_for_billing=True,
        ),
    )
    assert server.requests[-1].body["address1"] == "Mainstreet 5"
    assert server.requests[-1].body["zipCode"] == "10013"
    assert (address.line_3, address.postcode, address.default_for_billing) == (
        "Floor 10",
        "10013",
        True,
    )

    again = await client.customers.get(new.id)
    assert [p.id for p in again.people] == [person.id]
    assert [a.id for a in again.addresses] == [address.id]
    assert (await client.customers.get_by_email("jon@example.com")).id == new.id
    assert await client.customers.contacts(new.id) == (person,)
    assert await client.customers.addresses(new.id) == (address,)
    assert new.id in [c.id async for c in client.customers.stream()]


async def test_minimal_customer_sends_only_the_name(
    client: UphanceClient, server: FakeUphance
) -> None:
    await client.customers.create(NewCustomer(name="Acme"))
    assert server.requests[-1].body == {"name": "Acme"}


async def test_server_rejections_are_unprocessable(
    client: UphanceClient, server: FakeUphance
) -> None:
    wanted = server.ids("all")[0]
    with pytest.raises(UnprocessableEntityError) as caught:
        await client.customers.create_contact(wanted, NewContact(position="CEO"))
    assert "firstName" in str(caught.value)
    assert caught.value.status == 422
    assert len(server.requests) == 1


async def test_bodies_of_the_wrong_type_fail_before_sending(
    client: UphanceClient, server: FakeUphance
) -> None:
    with pytest.raises(TypeError, match="NewCustomer"):
        await client.customers.create({"name": "Acme"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NewAddress"):
        await client.customers.create_address(5, NewContact(first_name="x"))  # type: ignore[arg-type]
    assert server.requests == []


async def test_wrong_token_is_an_authentication_error(server: FakeUphance) -> None:
    async with UphanceClient(token="wrong", base_url=server.url) as api:
        with pytest.raises(AuthenticationError) as caught:
            await api.customers.page(1)
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)
    assert not server.requests[0].authorized


async def test_a_tenant_of_many_small_pages(server: FakeUphance) -> None:
    async with (
        FakeUphance(customers=1234, page_size=25, seed=3) as big,
        UphanceClient(token=big.token, base_url=big.url) as api,
    ):
        customers = [c async for c in api.customers.stream(status="all")]
    assert [c.id for c in customers] == big.ids("all")
    assert len({c.id for c in customers}) == 1234
    assert len(big.requests) == 50
