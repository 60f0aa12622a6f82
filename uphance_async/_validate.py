"""Checks on what callers pass in, run before anything is sent."""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def is_email(value: object) -> bool:
    """Whether ``value`` looks like an e-mail address: one ``@``, no white space or control."""
    return (
        isinstance(value, str)
        and len(value) <= 254
        and value.isprintable()
        and _EMAIL.fullmatch(value) is not None
    )


def positive_int(name: str, value: object) -> int:
    """``value`` if it is a positive int, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


def email(value: object) -> str:
    """``value`` if it looks like an e-mail address, else ``ValueError``."""
    if not is_email(value):
        raise ValueError(f"not an e-mail address: {value!r}")
    assert isinstance(value, str)
    return value


def email_field(instance: object, attribute: Any, value: Any) -> None:
    """An attrs validator: ``value`` must look like an e-mail address."""
    if not is_email(value):
        raise ValueError(f"{attribute.name} must be an e-mail address, not {value!r}")
