"""Strings held in flat arrays, so a model's vocabulary can be memory-mapped.

A table is three arrays: ``bytes`` (uint8, the UTF-8 strings end to end), ``offsets``
(int64, n + 1: string ``i`` is ``bytes[offsets[i]:offsets[i + 1]]``) and ``slots``
(int32, a power of two >= 2n: an open-addressing hash table of string indices, -1 for
empty, probed linearly from ``crc32(utf8) & (len - 1)``). crc32 rather than ``hash()``:
the table is built in another process, where ``hash()`` of a str is salted differently.

``StringList`` and ``StringIndex`` read such a table as the ``list[str]`` and the
``dict[str, int]`` serving used to build per version: mapping the arrays costs no
per-string work, so a new model version is ready in the time to map a file. Each
string decoded or looked up once is cached (at most one entry per string).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import overload

import numpy as np

EMPTY_SLOT = -1


def string_table(strings: Sequence[str], name: str) -> dict[str, np.ndarray]:
    """``{name}_bytes`` / ``{name}_offsets`` / ``{name}_slots`` of ``strings`` (unique)."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    size = 8
    while size < 2 * len(encoded):
        size *= 2
    slots = [EMPTY_SLOT] * size
    mask = size - 1
    for i, key in enumerate(encoded):
        slot = zlib.crc32(key) & mask
        while slots[slot] != EMPTY_SLOT:
            if encoded[slots[slot]] == key:
                raise ValueError(f"{name}: {strings[i]!r} is listed twice")
            slot = (slot + 1) & mask
        slots[slot] = i
    return {
        f"{name}_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        f"{name}_offsets": offsets,
        f"{name}_slots": np.array(slots, dtype=np.int32),
    }


class ListLike(Sequence):  # type: ignore[type-arg]
    """A read-only sequence that compares equal to a list with the same items."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class StringList(ListLike):
    """A string table read as a list: ``table[i]`` is string ``i``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], name: str) -> None:
        self._bytes = memoryview(arrays[f"{name}_bytes"])
        self._offsets = memoryview(arrays[f"{name}_offsets"])
        self._n = len(self._offsets) - 1
        self._decoded: dict[int, str] = {}

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        text = self._decoded.get(i)
        if text is None:
            if i < 0:
                i += self._n
            if not 0 <= i < self._n:
                raise IndexError("string index out of range")
            off = self._offsets
            text = self._decoded[i] = str(self._bytes[off[i] : off[i + 1]], "utf-8")
        return text

    def __repr__(self) -> str:
        return f"StringList({self._n} strings)"


class StringIndex(Mapping[str, int]):
    """A string table read as a dict: string -> its index (``get``, ``in``, ``[]``)."""

    def __init__(self, arrays: Mapping[str, np.ndarray], name: str) -> None:
        self._arrays, self._name = arrays, name
        self._bytes = memoryview(arrays[f"{name}_bytes"])
        self._offsets = memoryview(arrays[f"{name}_offsets"])
        self._slots = memoryview(arrays[f"{name}_slots"])
        self._mask = len(self._slots) - 1
        self._n = len(self._offsets) - 1
        self._found: dict[str, int] = {}

    def __len__(self) -> int:
        return self._n

    def get(self, key: object, default: int | None = None) -> int | None:  # type: ignore[override]
        found = self._found.get(key)  # type: ignore[call-overload]
        if found is not None:
            return found
        if not isinstance(key, str):
            return default
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no sku has one
            return default
        slots, off, data, mask = self._slots, self._offsets, self._bytes, self._mask
        slot = zlib.crc32(encoded) & mask
        while True:
            i = slots[slot]
            if i == EMPTY_SLOT:
                return default
            if data[off[i] : off[i + 1]] == encoded:
                self._found[key] = i
                return i
            slot = (slot + 1) & mask

    def lookup(self, keys: list[str]) -> list[int | None]:
        """``[get(k) for k in keys]`` at a dict's speed for strings looked up before (the
        request path's bulk form: one method call per request, not per sku)."""
        found = self._found.get
        out = [found(k) for k in keys]
        if None in out:
            get = self.get
            out = [get(k) if i is None else i for i, k in zip(out, keys, strict=True)]
        return out

    def __getitem__(self, key: str) -> int:
        i = self.get(key)
        if i is None:
            raise KeyError(key)
        return i

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(StringList(self._arrays, self._name))

    def __repr__(self) -> str:
        return f"StringIndex({self._n} strings)"
