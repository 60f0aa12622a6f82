"""Keeping the client's secrets out of every text it produces, whatever a server echoes back.

A server may repeat what it was sent: the password in a failed sign-in, the ``Authorization``
header in a 401 page, the refresh token in a 5xx. Each secret is looked for as sent and in the
forms an echo takes (URL-encoded, JSON-escaped, HTML-escaped, and base64 at any alignment, as
HTTP Basic would carry it beside a user name).

The order is fixed here and nowhere else: :func:`clip` redacts a text *before* it cuts it, and
treats the text's own end as a possible cut (a server's body read from a bounded prefix), so no
message, excerpt or log line ever holds a piece of a secret cut in two.

A secret shorter than :data:`SHORT` characters is redacted only where it stands as a whole word:
replacing every ``e`` of a message would leave it unreadable while protecting nothing (such a
secret is guessed in a few tries anyway). Uphance's tokens are far longer.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, quote_plus

from multidict import CIMultiDict

__all__ = ["REDACTED", "SHORT", "clip", "redact", "redact_headers"]

REDACTED = "<redacted>"
SHORT = 8
# The shortest piece of a secret, at the end of a cut text, that is replaced: shorter pieces
# are too common in ordinary words to be told apart from them.
_TAIL = 4


def _base64_forms(secret: bytes) -> set[str]:
    """The base64 characters that depend only on ``secret``, at each of the three alignments it
    can have inside a longer encoded text (``user:secret``)."""
    forms = set()
    for offset in range(3):
        bits_before, bits_end = 8 * offset, 8 * (offset + len(secret))
        start, end = -(-bits_before // 6), bits_end // 6
        padded = b"\0" * offset + secret
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(padded).decode()[start:end])
    return forms


@lru_cache(maxsize=64)
def _forms(secret: str) -> tuple[str, ...]:
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }
    if len(secret) >= SHORT:
        forms |= {form for form in _base64_forms(secret.encode()) if len(form) >= SHORT}
    # Longest first, so a form that contains another is replaced whole.
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


@lru_cache(maxsize=64)
def _whole_word(secret: str) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(form) for form in _forms(secret))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``<redacted>``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) < SHORT:
            text = _whole_word(secret).sub(REDACTED, text)
            continue
        for form in _forms(secret):
            if form in text:
                text = text.replace(form, REDACTED)
    return text


def clip(text: str, secrets: Iterable[str], limit: int | None = None) -> str:
    """``text`` redacted, then cut to ``limit`` characters: the one order every message, excerpt
    and log line is built in.

    ``text`` may itself be a cut (a body's first KiB): a piece of a secret at its end, whose
    rest was cut off, is redacted too.
    """
    kept = tuple(s for s in secrets if s)
    text = _cut_tail(redact(text, kept), kept)
    return text if limit is None else text[:limit]


def _cut_tail(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if len(secret) < SHORT:
            continue
        for form in _forms(secret):
            for size in range(min(len(form) - 1, len(text)), _TAIL - 1, -1):
                if text.endswith(form[:size]):
                    return text[:-size] + REDACTED
    return text


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str]) -> CIMultiDict[str]:
    """A copy of ``headers`` with secrets redacted from every name and value (a plain,
    picklable mapping: errors carrying it cross process boundaries)."""
    kept = tuple(secrets)
    return CIMultiDict((redact(name, kept), redact(value, kept)) for name, value in headers.items())
