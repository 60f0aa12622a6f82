"""A fake Uphance server for tests, benchmarks and demos: :class:`FakeUphance`.

It is a real ``aiohttp.web`` server on 127.0.0.1, so your own code can be tested against it
exactly as it will talk to Uphance::

    async with FakeUphance(customers=250, page_size=100) as server:
        async with UphanceClient(token=server.token, base_url=server.url) as client:
            ...
"""

from ._http import FAULTS, RecordedRequest
from ._server import FakeUphance

__all__ = ["FAULTS", "FakeUphance", "RecordedRequest"]
