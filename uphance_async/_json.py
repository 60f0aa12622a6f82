"""The one JSON codec (msgspec): bodies to Python values and back, and list pages to models.

A page of a typed list is decoded from its bytes straight into the frozen attrs models, in one
pass with msgspec's strict types. A page they refuse (an id as ``"7"``, a ``null`` list, a date
alone...) or whose models hold a value the lenient cattrs converter would make otherwise (a
``check``: "NaN" amounts, naive timestamps) is decoded to plain values instead and converted
record by record the thorough way, which names the JSON path of whatever is wrong. Both ways
give equal models wherever both succeed (``tests/test_codec.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import GenericAlias
from typing import Any, TypedDict

import msgspec

__all__ = ["JSONError", "TypedPages", "dumps", "loads"]


class JSONError(ValueError):
    """Bytes that are not JSON, or JSON nested deeper than the decoder goes."""


_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def loads(body: bytes | str) -> Any:
    """The value of a JSON text; :class:`JSONError` if it is not one."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise JSONError(str(exc)) from None
    except RecursionError:
        raise JSONError("nested too deeply") from None


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``TypeError`` for what JSON cannot hold, and
    ``RecursionError`` past the interpreter's recursion limit."""
    return _encoder.encode(value)


def indented(value: Any) -> bytes:
    """``value`` as JSON indented by two spaces, for people to read."""
    return msgspec.json.format(_encoder.encode(value), indent=2)


class TypedPages:
    """Decodes the body of a page whose records are under ``key`` straight into ``model``s;
    ``check`` (if any) must pass for every record."""

    def __init__(self, key: str, model: type, check: Callable[[Any], bool] | None) -> None:
        self.key = key
        # Only the records and meta are decoded (other keys are skipped); built at run time, so
        # through Any: a TypedDict of a key and a model that are values here.
        typed_dict: Any = TypedDict
        fields = {key: GenericAlias(list, (model,)), "meta": Any}
        self._decode = msgspec.json.Decoder(typed_dict(f"{model.__name__}Page", fields)).decode
        self._check = check

    def decode(self, body: bytes) -> dict[str, Any] | None:
        """``{key: [models...], "meta": ...}`` from ``body``; ``None`` when the page must be
        read the thorough way (an unusual value, another shape, or not JSON at all)."""
        try:
            data: dict[str, Any] = self._decode(body)
        except (msgspec.DecodeError, RecursionError):
            return None
        records = data.get(self.key)
        if records is None or (self._check is not None and not all(map(self._check, records))):
            return None
        return data
