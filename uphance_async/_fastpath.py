"""Generated structuring functions for the common, well-formed answer; cattrs does the rest.

A page of 100 customers holds about 900 objects and 9,000 fields, so structuring is the stream's
hot path. For each response class this module writes one straight-line function that accepts
only the canonical JSON types (``str``, ``int``, ``bool``, ``None``, money as decimal strings,
ISO timestamps) and calls the attrs ``__init__`` positionally. Anything else raises
:class:`Unusual`, and the caller hands the same data to the cattrs converter, which is lenient
and names the JSON path of whatever is wrong. Both give equal results where both succeed.
"""

from __future__ import annotations

import linecache
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any

import attrs
import msgspec


class Unusual(Exception):
    """The data is not in the canonical shape; structure it the slow, thorough way."""


_UNUSUAL = Unusual()
_DIGITS = frozenset("0123456789")


def timestamp(text: str) -> datetime:
    """An aware datetime from ISO 8601 text (a naive one is taken as UTC), read as msgspec reads
    RFC 3339 (a seventh fraction digit rounds), then as ``datetime.fromisoformat`` does for the
    rest of ISO 8601 ("+0200", a date alone); ``ValueError`` if neither reads it."""
    try:
        parsed = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _datetime(value: Any) -> datetime:
    if value.__class__ is not str:
        raise _UNUSUAL
    return timestamp(value)


def unwrap_optional(hint: Any) -> Any:
    """``X`` for ``X | None``, else the hint itself."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not NoneType]
        if len(args) == 1:
            return args[0]
    return hint


def held_classes(cl: type) -> list[type]:
    """The attrs classes that fields of ``cl`` hold, alone or in a tuple."""
    found = []
    for hint in typing.get_type_hints(cl).values():
        kind = unwrap_optional(hint)
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        if isinstance(kind, type) and attrs.has(kind):
            found.append(kind)
    return found


def build(cl: type, known: dict[type, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The fast function for attrs class ``cl``; nested classes must already be in ``known``."""
    hints = typing.get_type_hints(cl)
    names: dict[str, Any] = {
        "cl": cl,
        "U": _UNUSUAL,
        "D": Decimal,
        "DIGITS": _DIGITS,
        "dt": _datetime,
    }
    lines = ["def fast(o):", "    if o.__class__ is not dict: raise U", "    g = o.get"]
    args = []
    for index, field in enumerate(attrs.fields(cl)):
        var = f"v{index}"
        args.append(var)
        kind = unwrap_optional(hints[field.name])
        if field.default is attrs.NOTHING:
            lines.append(f"    {var} = o[{field.name!r}]")
            guard = ""
        else:
            lines.append(f"    {var} = g({field.name!r})")
            guard = f"{var} is not None and "
        if kind in (str, int, bool):
            names[kind.__name__] = kind
            lines.append(f"    if {guard}{var}.__class__ is not {kind.__name__}: raise U")
        elif kind is Decimal:
            # Ending in a digit rules out NaN, Infinity and stray spaces: those go the slow way.
            lines += [
                f"    if {var} is not None:",
                f"        if {var}.__class__ is not str or {var}[-1:] not in DIGITS: raise U",
                f"        {var} = D({var})",
            ]
        elif kind is datetime:
            lines.append(f"    if {var} is not None: {var} = dt({var})")
        elif attrs.has(kind):
            names[f"f{index}"] = known[kind]
            lines.append(f"    if {var} is not None: {var} = f{index}({var})")
        elif typing.get_origin(kind) is tuple and attrs.has(typing.get_args(kind)[0]):
            names[f"f{index}"] = known[typing.get_args(kind)[0]]
            lines += [
                f"    if {var} is None: {var} = ()",
                f"    elif {var}.__class__ is list: {var} = tuple([f{index}(x) for x in {var}])",
                "    else: raise U",
            ]
        else:
            # A type this generator does not know: always take the thorough path.
            lines.append("    raise U")
    lines.append(f"    return cl({', '.join(args)})")
    function: Callable[[Any], Any] = _compiled(
        lines, names, f"fast structure {cl.__module__}.{cl.__qualname__}"
    )
    return function


def build_check(cl: type) -> Any:
    """A function telling whether an instance of attrs class ``cl`` that msgspec decoded holds
    only values the converter would have made alike: amounts finite (msgspec reads "NaN" as
    one) and timestamps with a zone (the converter puts a naive one in UTC). The classes ``cl``
    holds are checked inline, without a call per nested object. ``None`` when ``cl`` holds
    nothing to check."""
    body = _check_lines(cl, "o", 1)
    if not body:
        return None
    lines = ["def check(o):", *body, "    return True"]
    return _compiled(lines, {}, f"msgspec check {cl.__module__}.{cl.__qualname__}")


def _check_lines(cl: type, var: str, depth: int) -> list[str]:
    """The lines of :func:`build_check` for the instance of ``cl`` named ``var``, indented
    ``depth`` times; each depth has names of its own."""
    hints = typing.get_type_hints(cl)
    pad, value, held = "    " * depth, f"v{depth}", f"o{depth}"
    lines: list[str] = []
    for field in attrs.fields(cl):
        kind = unwrap_optional(hints[field.name])
        test = None
        if kind is Decimal:
            test = f"not {value}.is_finite()"
        elif kind is datetime:
            test = f"{value}.tzinfo is None"
        if test is not None:
            lines += [
                f"{pad}{value} = {var}.{field.name}",
                f"{pad}if {value} is not None and {test}: return False",
            ]
        elif attrs.has(kind) and (inner := _check_lines(kind, held, depth + 1)):
            lines += [f"{pad}{held} = {var}.{field.name}", f"{pad}if {held} is not None:", *inner]
        elif typing.get_origin(kind) is tuple and attrs.has(typing.get_args(kind)[0]):
            inner = _check_lines(typing.get_args(kind)[0], held, depth + 1)
            if inner:
                lines += [f"{pad}for {held} in {var}.{field.name}:", *inner]
    return lines


def _compiled(lines: list[str], names: dict[str, Any], title: str) -> Any:
    """The function the generated ``lines`` define, with ``names`` as its globals."""
    source = "\n".join(lines) + "\n"
    filename = f"<{title}>"
    # Registered so that tracebacks and debuggers show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), names)
    return names[lines[0][4 : lines[0].index("(")]]
