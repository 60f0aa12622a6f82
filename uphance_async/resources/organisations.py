"""``GET /organisations`` and ``POST /organisations/set_current_org``."""

from __future__ import annotations

from .. import _validate
from .._convert import structure
from .._transport import Transport, UseAuth
from ..errors import ResponseValidationError
from ..models import Organisation

__all__ = ["OrganisationsAPI"]


class OrganisationsAPI:
    """The organisations of the signed-in user, and which one requests act on."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> tuple[Organisation, ...]:
        """Every organisation the user belongs to."""
        data = await self._transport.request("GET", "/organisations")
        found = data.get("organisations") if isinstance(data, dict) else data
        if not isinstance(found, list):
            raise ResponseValidationError(
                "expected a list of organisations",
                path="$.organisations",
                method="GET",
                url_path="/organisations",
            )
        return tuple(
            structure(item, Organisation, f"$.organisations[{index}]")
            for index, item in enumerate(found)
        )

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
            raw=True,
        )
