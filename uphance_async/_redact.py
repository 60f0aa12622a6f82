"""Keeping the client's secrets out of every text it produces, whatever a server echoes back.

A server may repeat what it was sent: the password in a failed sign-in, the ``Authorization``
header in a 401 page, the refresh token in a 5xx. Each secret is looked for as sent and in the
forms an echo takes (URL-encoded, JSON-escaped, HTML-escaped).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

from multidict import CIMultiDict, CIMultiDictProxy

REDACTED = "<redacted>"


def _forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``<redacted>``."""
    forms = {form for secret in secrets if secret for form in _forms(secret) if form}
    # Longest first, so a secret that contains another is replaced whole.
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str]) -> CIMultiDictProxy[str]:
    """A read-only copy of ``headers`` with secrets redacted from every value."""
    kept = tuple(secrets)
    return CIMultiDictProxy(
        CIMultiDict((name, redact(value, kept)) for name, value in headers.items())
    )
