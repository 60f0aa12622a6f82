"""The one cattrs converter: lenient structuring of answers, camelCase request bodies.

Answers are taken as liberally as the API's history requires: numbers that come as strings,
money as strings or numbers, ``null`` lists, timestamps with ``Z``. What cannot be read raises
:class:`~uphance_async.errors.ResponseValidationError` naming the JSON path.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _fastpath
from .errors import ResponseValidationError
from .models import _WIRE_NAME, NewAddress, NewContact, NewCustomer

T = TypeVar("T")

converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise TypeError(f"expected a boolean, got {value!r}")


def _structure_decimal(value: Any, _: type) -> Decimal | None:
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float):
        # repr() keeps the shortest decimal form ("0.1", not 0.1000000000000000055...).
        amount = Decimal(repr(value))
    else:
        raise TypeError(f"expected a decimal number, got {value!r}")
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return amount


def _structure_datetime(value: Any, _: type) -> datetime | None:
    if isinstance(value, str):
        return _fastpath.timestamp(value.strip()) if value.strip() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    raise TypeError(f"expected an ISO 8601 timestamp, got {value!r}")


def _is_homogeneous_tuple(cl: Any) -> bool:
    args = typing.get_args(cl)
    return typing.get_origin(cl) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook_factory(cl: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    item_type = typing.get_args(cl)[0]
    item_hook = converter.get_structure_hook(item_type)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        items = []
        errors = []
        for index, item in enumerate(value):
            try:
                items.append(item_hook(item, item_type))
            except Exception as exc:
                note = IterableValidationNote(f"Structuring item @ index {index}", index, item_type)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {cl!r}", errors, cl)
        return tuple(items)

    return structure_tuple


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_structure_hook(datetime, _structure_datetime)
converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook_factory)
converter.register_unstructure_hook(Decimal, str)
converter.register_unstructure_hook(datetime, lambda value: value.isoformat())

# A postcode is a str or an int on both sides; keep whichever the caller gave.
converter.register_structure_hook(str | int | None, lambda value, _: value)

_REQUEST_BODIES = (NewCustomer, NewContact, NewAddress)

for _body in _REQUEST_BODIES:
    # A field's wire name (camelCase) comes from its metadata; the others go out as named.
    _overrides: dict[str, Any] = {
        field.name: override(rename=field.metadata[_WIRE_NAME])
        for field in attrs.fields(_body)
        if _WIRE_NAME in field.metadata
    }
    converter.register_unstructure_hook(
        _body,
        make_dict_unstructure_fn(_body, converter, _cattrs_omit_if_default=True, **_overrides),
    )
    converter.register_structure_hook(_body, make_dict_structure_fn(_body, converter, **_overrides))


def _fast_or_thorough(cl: type[T], fast: Callable[[Any], T]) -> Callable[[Any], T]:
    thorough = make_dict_structure_fn(cl, converter)

    def structure_one(data: Any) -> T:
        try:
            return fast(data)
        except Exception:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}") from None
            return thorough(data, cl)

    return structure_one


_FAST: dict[type, Callable[[Any], Any]] = {}
_HOOKS: dict[type, Callable[[Any], Any]] = {}


def _fast(cl: type) -> Callable[[Any], Any]:
    """``cl``'s generated function, built after those of the classes it holds (leaves first),
    each of which also gets its converter hook, so that cattrs's thorough path uses them."""
    if cl not in _FAST:
        for nested in _fastpath.held_classes(cl):
            structure_hook(nested)
        _FAST[cl] = _fastpath.build(cl, _FAST)
    return _FAST[cl]


_CHECKS: dict[type, Callable[[Any], bool] | None] = {}


def decoded_check(cl: type) -> Callable[[Any], bool] | None:
    """The check that a ``cl`` decoded by msgspec equals what the converter makes of the same
    JSON (see :func:`_fastpath.build_check`); ``None`` when there is nothing to check."""
    if cl not in _CHECKS:
        _CHECKS[cl] = _fastpath.build_check(cl)
    return _CHECKS[cl]


def _is_response_model(cl: Any) -> bool:
    return (
        isinstance(cl, type)
        and attrs.has(cl)
        and cl.__module__.startswith("uphance_async.")
        and cl not in _REQUEST_BODIES
    )


def _response_model_hook(cl: type) -> Callable[[Any, Any], Any]:
    hook: Callable[[Any], Any] = structure_hook(cl)
    return lambda data, _: hook(data)


# Any attrs class of this package met while structuring gets the fast path, on first use: a new
# model needs no line here.
converter.register_structure_hook_factory(_is_response_model, _response_model_hook)


def body(value: Any) -> dict[str, Any]:
    """The JSON body for a request model, in the wire's names, without ``None`` fields."""
    result: dict[str, Any] = converter.unstructure(value)
    return result


def structure(data: Any, cl: type[T], path: str = "$") -> T:
    """``data`` as a ``cl``; a :class:`ResponseValidationError` naming the JSON path otherwise."""
    try:
        return converter.structure(data, cl)
    except Exception as exc:
        raise validation_error(exc, cl, path) from None


def structure_hook(cl: type[T]) -> Callable[[Any], T]:
    """The fast one-argument structuring function of response model ``cl``, for hot loops:
    the generated fast path, and cattrs for anything unusual (built on first use).

    Its failures are cattrs errors; pass them to :func:`validation_error`.
    """
    hook: Callable[[Any], T] | None = _HOOKS.get(cl)
    if hook is None:
        hook = _HOOKS[cl] = _fast_or_thorough(cl, _fast(cl))
    return hook


def validation_error(exc: BaseException, cl: type, path: str) -> ResponseValidationError:
    """Turn a cattrs (or plain) structuring failure into our typed error with the JSON path."""
    if isinstance(exc, ResponseValidationError):
        return exc
    messages = cattrs.transform_error(exc, path=path)
    first = messages[0] if messages else f"invalid value @ {path}"
    where = first.rsplit(" @ ", 1)[-1] if " @ " in first else path
    name = cl.__name__ if attrs.has(cl) else repr(cl)
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return ResponseValidationError(f"cannot read {name}: {first}{more}", json_path=where)
