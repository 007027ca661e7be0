"""In-memory index of black / white / grey list entries, looked up on every decision.

Entries hold pseudonymised values (keyed-hash tokens) only. The index is rebuilt from the store when the
store's list version changes, so every worker sees a change within one refresh interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

LIST_TYPES = ("black", "white", "grey")


@dataclass(frozen=True, slots=True)
class ListHit:
    list_type: str
    entity_type: str
    reason: str
    source: str
    entry_id: str | None = None


class ListIndex:
    """``(entity_type, value) -> [entries]`` with expiry checked at lookup time.

    >>> idx = ListIndex()
    >>> idx.add("black", "device_id", "dev-1", reason="fraud ring", source="analyst")
    >>> [h.list_type for h in idx.lookup("device_id", "dev-1", now=0)]
    ['black']
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[tuple[ListHit, float | None]]] = {}
        self._lock = threading.Lock()
        self.version = -1

    def add(self, list_type: str, entity_type: str, value: str, *, reason: str = "", source: str = "",
            expires_at: float | None = None, entry_id: str | None = None) -> None:
        hit = ListHit(list_type, entity_type, reason, source, entry_id)
        with self._lock:
            self._entries.setdefault((entity_type, value), []).append((hit, expires_at))

    def replace_all(self, entries: Iterable[dict[str, Any]], version: int) -> None:
        """Swap in a full set of entries (dicts with list_type, entity_type, value_hash, …)."""
        new: dict[tuple[str, str], list[tuple[ListHit, float | None]]] = {}
        for e in entries:
            hit = ListHit(e["list_type"], e["entity_type"], e.get("reason") or "", e.get("source") or "",
                          str(e.get("id") or e.get("entry_id") or ""))
            new.setdefault((e["entity_type"], e["value_hash"]), []).append((hit, e.get("expires_at")))
        with self._lock:
            self._entries = new
            self.version = version

    def lookup(self, entity_type: str, value: str, now: float | None = None) -> list[ListHit]:
        found = self._entries.get((entity_type, value))
        if not found:
            return []
        now = time.time() if now is None else now
        return [h for h, exp in found if exp is None or exp > now]

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())
