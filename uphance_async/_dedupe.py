"""What a stream dedupes on (:func:`id_key`), and the keys it handed out (:class:`SeenKeys`):
page-number pagination repeats records when the list changes during a crawl."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

__all__ = ["SeenKeys", "dict_ids", "id_key", "ints_only", "keys_of", "of_types"]

_INT = frozenset((int,))
_ID = attrgetter("id")


def id_key(item: Any) -> Hashable:
    """The key a stream dedupes on: the record's ``id``, with ``"7"`` and ``7`` the same record
    (as they are once structured); ``None`` (never deduped) for a record without one."""
    value = item.get("id") if item.__class__ is dict else getattr(item, "id", None)
    if value.__class__ is str and value.isascii() and value.isdigit():
        return int(value)
    return value if value.__class__ in (int, str) else None


def of_types(values: Iterable[Any], kinds: frozenset[type]) -> bool:
    """Whether the exact type of every value is one of ``kinds``, in one pass at C speed."""
    return set(map(type, values)) <= kinds


def ints_only(keys: list[Hashable]) -> bool:
    """Whether every key is an ``int`` (not a ``bool``)."""
    return of_types(keys, _INT)


def dict_ids(records: Iterable[dict[str, Any]]) -> list[Any]:
    """The ``"id"`` of each JSON object (``None`` where it has none), at C speed."""
    return list(map(dict.get, records, repeat("id")))


def keys_of(items: Sequence[Any], key: Callable[[Any], Hashable]) -> list[Hashable]:
    """``key`` of each item. For :func:`id_key` over models or dicts whose ids are all ints
    (the usual page), the ids are read at C speed, without a Python call per item."""
    if key is id_key and items:
        try:
            ids = dict_ids(items) if items[0].__class__ is dict else list(map(_ID, items))
        except (AttributeError, TypeError):
            pass
        else:
            if ints_only(ids):
                return ids
    return list(map(key, items))


class SeenKeys:
    """Every key a stream handed out, in little memory whatever the stream's length.

    A set of a million ints costs about 60 MB; here int keys settle, 8192 at a time, into sorted
    arrays of 8 bytes a key (a batch beyond the last run extends it; others merge into runs of
    at most 65536 keys, so settling never copies more), and only the latest batch stays a set.
    Other keys stay in a set. A list not in id order puts a page within the runs' ranges: its
    keys are first looked up in a filter of one bit per key modulo 2**23 (1 MB, made then), and
    only those whose bit is set are searched in the runs.
    """

    _BATCH = 8192
    _RUN = 65536
    _FILTER = 1 << 23

    def __init__(self) -> None:
        self._recent: set[int] = set()
        self._runs: list[array[int]] = []
        self._others: set[Hashable] = set()
        self._filter: bytearray | None = None

    def fresh(self, items: Sequence[Any], keys: list[Hashable]) -> Sequence[Any]:
        """The ``items`` (whose keys are ``keys``) not seen before, in order; remembers them."""
        if self._all_new(keys):
            self._recent.update(keys)  # type: ignore[arg-type]  # _all_new checked: all ints
            if len(self._recent) >= self._BATCH:
                self._settle()
            return items
        return [item for item, item_key in zip(items, keys, strict=True) if self.add(item_key)]

    def _all_new(self, keys: list[Hashable]) -> bool:
        """Whether ``keys`` are distinct, all int64 and none seen: the usual page, checked
        in a few C-level passes instead of one call per key."""
        if not keys:
            return True
        distinct = set(keys)
        if len(distinct) != len(keys) or not distinct.isdisjoint(self._recent):
            return False
        if not ints_only(keys):
            return False
        ints: list[int] = keys  # type: ignore[assignment]
        low, high = min(ints), max(ints)
        if low < -(2**63) or high >= 2**63:
            return False
        candidates: list[int] | None = None
        for run in self._runs:
            if high < run[0] or low > run[-1]:
                continue
            if candidates is None:
                candidates = self._maybe_settled(ints)
            for key in candidates:
                index = bisect_left(run, key)
                if index < len(run) and run[index] == key:
                    return False
        return True

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False when it was already there. ``None`` is never a duplicate."""
        if key is None:
            return True
        if type(key) is not int or not -(2**63) <= key < 2**63:
            if key in self._others:
                return False
            self._others.add(key)
            return True
        if key in self._recent:
            return False
        for run in self._runs:
            index = bisect_left(run, key)
            if index < len(run) and run[index] == key:
                return False
        self._recent.add(key)
        if len(self._recent) >= self._BATCH:
            self._settle()
        return True

    def _maybe_settled(self, keys: list[int]) -> list[int]:
        """Those of ``keys`` whose bit is set in the filter (the others were never settled);
        the filter is made from the runs when first needed."""
        if self._filter is None:
            self._filter = bytearray(self._FILTER // 8)
            for run in self._runs:
                self._mark(run)
        bits, mask = self._filter, self._FILTER // 8 - 1
        return [key for key in keys if bits[key >> 3 & mask] >> (key & 7) & 1]

    def _mark(self, keys: Iterable[int]) -> None:
        bits, mask = self._filter, self._FILTER // 8 - 1
        assert bits is not None
        for key in keys:
            bits[key >> 3 & mask] |= 1 << (key & 7)

    def _settle(self) -> None:
        batch = array("q", sorted(self._recent))
        self._recent = set()
        if self._filter is not None:
            self._mark(batch)
        last = self._runs[-1] if self._runs else None
        if last is not None and batch[0] > last[-1]:
            last.extend(batch)  # a list in id order: the batch goes after the run, unmerged
        elif last is None or len(last) + len(batch) > self._RUN:
            self._runs.append(batch)
        else:
            # Two sorted runs: timsort merges them in one linear pass.
            self._runs[-1] = array("q", sorted([*last, *batch]))
