"""Reading answers whose shape varies: records bare or wrapped, lists bare or under a key.

Uphance's answers have changed over the years and differ between endpoints, so every resource
finds its records the same liberal way, and names the JSON path of whatever it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs

from .._convert import structure, validation_error
from .._pages import PageMeta
from ..errors import NotFoundError, ResponseValidationError

T = TypeVar("T")


def one_object(data: Any, names: Iterable[str], what: str, method: str, path: str) -> Any:
    """The single record in an answer: bare, wrapped in one key, or the first of a list."""
    if isinstance(data, dict):
        if "id" in data:
            return data
        for name in names:
            if isinstance(data.get(name), dict):
                return data[name]
        objects = [value for value in data.values() if isinstance(value, dict | list)]
        if len(objects) == 1:
            data = objects[0]
    if isinstance(data, dict) and "id" in data:
        return data
    if isinstance(data, list):
        if not data:
            raise NotFoundError(
                f"HTTP 404 for {method} {path}: the server answered an empty list",
                status=404,
                method=method,
                url_path=path,
            )
        return data[0]
    raise ResponseValidationError(f"{method} {path}: expected {what} object, got {describe(data)}")


def list_of(data: Any, names: Iterable[str], where: str = "$") -> tuple[list[Any], str] | None:
    """The list in an answer and its JSON path: a bare array, under one key, or under one key
    of the only object in the answer (``{"customer": {"people": [...]}}``)."""
    if isinstance(data, list):
        return data, where
    if not isinstance(data, dict):
        return None
    for name in names:
        if isinstance(data.get(name), list):
            return data[name], f"{where}.{name}"
    lists = [(key, value) for key, value in data.items() if isinstance(value, list)]
    if len(lists) == 1:
        return lists[0][1], f"{where}.{lists[0][0]}"
    objects = [(key, value) for key, value in data.items() if isinstance(value, dict)]
    if not lists and len(objects) == 1 and where == "$":
        return list_of(objects[0][1], names, f"$.{objects[0][0]}")
    return None


def describe(data: Any) -> str:
    if isinstance(data, dict):
        return "an object with keys " + ", ".join(sorted(map(str, data))[:8])
    return type(data).__name__ if data is not None else "an empty body"


def items(
    data: Any,
    names: Iterable[str],
    convert: Callable[[Any], T],
    cl: type,
    *,
    exact: bool = False,
    plain: Callable[[list[Any]], bool] | None = None,
) -> tuple[T, ...]:
    """The records of a list answer, converted; with ``exact``, an object answer must hold them
    under one of ``names``. ``plain``, if given, tells of a whole list at once that ``convert``
    would hand back each record unchanged: then it is not called per record."""
    names = tuple(names)
    if exact and isinstance(data, dict) and not any(isinstance(data.get(n), list) for n in names):
        raise ResponseValidationError(
            f"expected the records under {' or '.join(map(repr, names))}, got {describe(data)}",
            json_path=f"$.{names[0]}",
        )
    found = list_of(data, names)
    if found is None:
        raise ResponseValidationError(f"expected a list, got {describe(data)}")
    raw, where = found
    if plain is not None and plain(raw):
        return tuple(raw)
    try:
        return tuple(map(convert, raw))
    except Exception:
        # Convert again one by one, only to name the JSON path of the first bad item.
        for index, item in enumerate(raw):
            try:
                convert(item)
            except Exception as exc:
                raise validation_error(exc, cl, f"{where}[{index}]") from None
        raise


@contextmanager
def answer_to(method: str, path: str) -> Iterator[None]:
    """Name the request in any ResponseValidationError raised while reading its answer."""
    try:
        yield
    except ResponseValidationError as error:
        error.method, error.url_path = method, path
        raise


def page_meta(data: Any) -> PageMeta:
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        return PageMeta()
    meta: PageMeta = structure(data["meta"], PageMeta, "$.meta")
    if "next_page" in data["meta"] or not meta.current_page:
        return meta
    # No next_page at all (not null): derive it from the totals rather than stop after this page.
    following: int | None = meta.current_page + 1
    if meta.total_pages is not None:
        following = following if meta.current_page < meta.total_pages else None
    elif meta.total_count is not None:
        found = list_of(data, ())
        size = len(found[0]) if found is not None else 0
        following = following if size and meta.current_page * size < meta.total_count else None
    else:
        return meta
    return attrs.evolve(meta, next_page=following)
