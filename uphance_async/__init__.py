"""uphance-async: an async client for the Uphance Customer API.

>>> from uphance_async import UphanceClient
"""

import logging

from ._auth import Credentials, JSONFileTokenStore, Token, TokenStore
from ._convert import converter
from ._events import RequestEvent
from ._export import export as export_customers
from ._ratelimit import Limiter, RateLimiter
from ._retry import RetryPolicy
from ._version import __version__
from .client import UphanceClient
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    DriftError,
    ExportError,
    NotFoundError,
    OutputStateError,
    PaginationError,
    PermissionDeniedError,
    RateLimiterError,
    RateLimitError,
    RecordEncodingError,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerError,
    UnprocessableEntityError,
    UphanceError,
)
from .models import (
    Address,
    Agent,
    Contact,
    Customer,
    Invoice,
    LastOrder,
    NewAddress,
    NewContact,
    NewCustomer,
    Organisation,
    OutstandingAmount,
    PurchaseAmount,
)
from .pagination import Checkpoint, Page, PageMeta, PageStream, Seams, StreamStats
from .resources.customers import CustomerStream

# A library logs, the application decides where logs go.
logging.getLogger("uphance_async").addHandler(logging.NullHandler())

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Address",
    "Agent",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "ClientClosedError",
    "Contact",
    "Credentials",
    "Customer",
    "CustomerStream",
    "DriftError",
    "ExportError",
    "Invoice",
    "JSONFileTokenStore",
    "LastOrder",
    "Limiter",
    "NewAddress",
    "NewContact",
    "NewCustomer",
    "NotFoundError",
    "Organisation",
    "OutputStateError",
    "OutstandingAmount",
    "Page",
    "PageMeta",
    "PageStream",
    "PaginationError",
    "PermissionDeniedError",
    "PurchaseAmount",
    "RateLimitError",
    "RateLimiter",
    "RateLimiterError",
    "RecordEncodingError",
    "RequestEvent",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "Seams",
    "ServerError",
    "StreamStats",
    "Token",
    "TokenStore",
    "UnprocessableEntityError",
    "UphanceClient",
    "UphanceError",
    "__version__",
    "converter",
    "export_customers",
]
