"""``GET /organisations`` and ``POST /organisations/set_current_org``."""

from __future__ import annotations

from .. import _validate
from .._convert import converter
from .._protocol import keep_bytes
from .._transport import Transport, UseAuth
from ..models import Organisation
from ._shapes import answer_to, items

__all__ = ["OrganisationsAPI"]


def _organisation(data: object) -> Organisation:
    found: Organisation = converter.structure(data, Organisation)
    return found


class OrganisationsAPI:
    """The organisations of the signed-in user, and which one requests act on."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> tuple[Organisation, ...]:
        """Every organisation the user belongs to."""
        data = await self._transport.request("GET", "/organisations")
        with answer_to("GET", "/organisations"):
            return items(data, ("organisations",), _organisation, Organisation)

    async def select(
        self, organisation_id: int, *, authorization: str | UseAuth = UseAuth.CLIENT
    ) -> None:
        """Make later requests with this token act on ``organisation_id`` (any 2xx is success)."""
        _validate.positive_int("organisation id", organisation_id)
        await self._transport.request(
            "POST",
            "/organisations/set_current_org",
            json={"organizationId": organisation_id},
            authorization=authorization,
            decode=keep_bytes,
        )
