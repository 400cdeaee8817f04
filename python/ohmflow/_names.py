"""Element names: explicit names where given, ``<prefix><index>`` otherwise.

Names are stored only where given, so a million unnamed edges cost nothing; the
list of all names is built on demand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from ._core import InvalidNetworkError


class NameTable:
    """Bidirectional map between element indices and names."""

    def __init__(self, prefix: str, kind: str) -> None:
        self.prefix = prefix
        self.kind = kind
        self.count = 0
        self._by_name_d: dict[str, int] = {}
        self._by_index_d: dict[int, str] = {}
        # Names still to be fetched (see extend_lazy).
        self._pending: Callable[[], list[str]] | None = None
        self._auto = re.compile(re.escape(prefix) + r"(\d+)\Z")

    def _load(self) -> None:
        fetch, self._pending = self._pending, None
        if fetch is not None:
            names = fetch()
            if len(names) != self.count:
                raise InvalidNetworkError(
                    f"{self.kind}: {self.count} elements but {len(names)} names"
                )
            self._by_name_d = dict(zip(names, range(len(names))))
            self._by_index_d = dict(enumerate(names))

    @property
    def _by_name(self) -> dict[str, int]:
        if self._pending is not None:
            self._load()
        return self._by_name_d

    @_by_name.setter
    def _by_name(self, value: dict[str, int]) -> None:
        self._by_name_d = value

    @property
    def _by_index(self) -> dict[int, str]:
        if self._pending is not None:
            self._load()
        return self._by_index_d

    @_by_index.setter
    def _by_index(self, value: dict[int, str]) -> None:
        self._by_index_d = value

    def extend_lazy(self, count: int, fetch: Callable[[], list[str]]) -> None:
        """Registers ``count`` elements of a fresh table whose names ``fetch()`` returns
        when first needed; the caller guarantees them unique non-empty strings (a
        SPICE netlist's, checked by its reader)."""
        if self.count or self._by_name_d or self._pending is not None:
            raise InvalidNetworkError(f"{self.kind}: lazy names need a fresh table")
        self.count = count
        if count:
            self._pending = fetch

    def copy(self) -> NameTable:
        t = NameTable(self.prefix, self.kind)
        t.count = self.count
        t._by_name = dict(self._by_name)
        t._by_index = dict(self._by_index)
        return t

    def _auto_index(self, name: str) -> int | None:
        m = self._auto.match(name)
        if m is None:
            return None
        k = int(m.group(1))
        if str(k) != m.group(1):  # leading zeros are not an auto name
            return None
        return k

    def extend(self, count: int, names: Sequence[str | None] | None = None) -> None:
        """Registers ``count`` new elements, with optional names (None entries auto)."""
        start = self.count
        if names is not None and start == 0 and not self._by_name and count > 0:
            # A fresh table named in full (e.g. from a SPICE netlist): built in bulk.
            # With every element named, no default name is in use, so the only
            # checks left are types and uniqueness.
            names = list(names)
            if len(names) != count:
                raise InvalidNetworkError(f"{self.kind}: {count} elements but {len(names)} names")
            if all(type(n) is str for n in names) and "" not in names:
                by_name = dict(zip(names, range(count)))
                if len(by_name) == count:
                    self._by_name = by_name
                    self._by_index = dict(enumerate(names))
                    self.count = count
                    return
        if names is not None:
            if len(names) != count:
                raise InvalidNetworkError(f"{self.kind}: {count} elements but {len(names)} names")
            for i, name in enumerate(names):
                if name is None:
                    continue
                if not isinstance(name, str) or not name:
                    raise InvalidNetworkError(f"{self.kind} names must be non-empty strings")
                self._check_free(name, start + i)
                self._by_name[name] = start + i
                self._by_index[start + i] = name
        # An unnamed element whose default name is already taken gets a suffix.
        for name in list(self._by_name):
            j = self._auto_index(name)
            if j is not None and start <= j < start + count and j not in self._by_index:
                k = 1
                while f"{name}_{k}" in self._by_name:
                    k += 1
                self._by_name[f"{name}_{k}"] = j
                self._by_index[j] = f"{name}_{k}"
        self.count += count

    def _check_free(self, name: str, index: int) -> None:
        if name in self._by_name:
            raise InvalidNetworkError(f"duplicate {self.kind} name {name!r}")
        j = self._auto_index(name)
        if j is not None and j < self.count and j not in self._by_index and j != index:
            raise InvalidNetworkError(
                f"{self.kind} name {name!r} is the default name of element {j}"
            )

    def index(self, name: str) -> int | None:
        """Index of ``name``, or None."""
        k = self._by_name.get(name)
        if k is not None:
            return k
        j = self._auto_index(name)
        if j is not None and j < self.count and j not in self._by_index:
            return j
        return None

    def name(self, index: int) -> str:
        return self._by_index.get(index, f"{self.prefix}{index}")

    def names(self) -> list[str]:
        if not self._by_index:
            return [f"{self.prefix}{i}" for i in range(self.count)]
        return [self.name(i) for i in range(self.count)]

    def lookup(self, key: str | int, *, kind: str | None = None) -> int:
        """Index from a name or an integer index (range-checked)."""
        kind = kind or self.kind
        if isinstance(key, str):
            k = self.index(key)
            if k is None:
                raise InvalidNetworkError(f"unknown {kind} {key!r}")
            return k
        k = _as_int(key, kind)
        if not 0 <= k < self.count:
            raise InvalidNetworkError(f"unknown {kind} {k} (there are {self.count})")
        return k

    def lookup_many(self, keys: Iterable[str | int]) -> list[int]:
        return [self.lookup(k) for k in keys]


def _as_int(x: object, kind: str) -> int:
    try:
        import numpy as np

        if isinstance(x, (bool, np.bool_)):
            raise TypeError
        if isinstance(x, (int, np.integer)):
            return int(x)
        if isinstance(x, (float, np.floating)) and float(x).is_integer():
            return int(x)
    except TypeError:
        pass
    raise InvalidNetworkError(f"{kind} must be a name or an integer index, got {x!r}")
