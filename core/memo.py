"""A small per-process memory with expiry, for answers that may be a few seconds stale (who a token is).

Thread-safe under the GIL for what it does (dict get/set/pop); bounded: when full it starts again empty.
"""

import time
from collections.abc import Callable, Hashable
from typing import Any


class Memo:
    """Remember values for ``seconds`` (read at each ``set``, so a setting change applies to new entries)."""

    def __init__(self, *, seconds: Callable[[], float], max_entries: int = 10_000):
        self._seconds = seconds
        self._max = max_entries
        self._data: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return entry[1]

    def set(self, key: Hashable, value: Any) -> None:
        seconds = self._seconds()
        if seconds <= 0:
            return
        if len(self._data) >= self._max:
            self._data.clear()
        self._data[key] = (time.monotonic() + seconds, value)

    def discard(self, key: Hashable) -> None:
        self._data.pop(key, None)

    def discard_where(self, test: Callable[[Any], bool]) -> None:
        for key, (_expires, value) in list(self._data.items()):
            if test(value):
                self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
