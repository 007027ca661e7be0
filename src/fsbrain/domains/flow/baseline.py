"""Learned baselines: per entity and time-of-day slot, the mean and spread of each attack class's rate.

Each (entity, slot) keeps decayed sums ``n, Σx, Σx²`` per metric; when ``n`` passes the memory limit, all
three are scaled down together (exponential forgetting), so the baseline follows slow drift — growth,
seasons — while a single day's anomaly fades. A slot with too few observations falls back to the entity's
all-day baseline; an entity with too few, to static thresholds only. Updates and threshold look-ups are
vectorised over every (window, entity) row of a batch.

>>> import numpy as np
>>> b = Baseline(metrics=("udp",), slots=24, memory=1000, max_entities=10)
>>> ent, slot = np.array([7] * 100, dtype=np.uint32), np.zeros(100, dtype=np.int64)
>>> b.update(ent, slot, {"udp": np.full(100, 50.0)})
>>> mean, std, n = b.stats("udp", np.array([7], dtype=np.uint32), np.array([0]), min_windows=10)
>>> float(mean[0]), float(std[0]), int(n[0])
(50.0, 0.0, 100)
"""

from __future__ import annotations

from typing import Any

import numpy as np

VERSION = 1


class Baseline:
    """Per-entity, per-slot running statistics for several metrics.

    Args:
        metrics: metric names.
        slots: time-of-day slots.
        memory: observations remembered per (entity, slot) before forgetting.
        max_entities: entities tracked; later ones are not learned (counted in ``untracked``).
    """

    def __init__(self, *, metrics: tuple[str, ...], slots: int, memory: int, max_entities: int) -> None:
        self.metrics = metrics
        self.slots = slots
        self.memory = memory
        self.max_entities = max_entities
        self._index: dict[int, int] = {}
        cap = 64
        self._n = np.zeros((cap, slots + 1))  # slot column `slots` is the all-day aggregate
        self._s1 = {m: np.zeros((cap, slots + 1)) for m in metrics}
        self._s2 = {m: np.zeros((cap, slots + 1)) for m in metrics}
        self.untracked = 0

    def __len__(self) -> int:
        return len(self._index)

    def _rows(self, entities: np.ndarray, create: bool) -> np.ndarray:
        """Row index per entity; -1 for unknown (or beyond capacity)."""
        uniq, inv = np.unique(entities, return_inverse=True)
        rows = np.empty(len(uniq), dtype=np.int64)
        for i, e in enumerate(uniq.tolist()):
            r = self._index.get(e, -1)
            if r < 0 and create:
                if len(self._index) < self.max_entities:
                    r = self._index[e] = len(self._index)
                    self._grow(r + 1)
                else:
                    self.untracked += 1
            rows[i] = r
        return rows[inv]

    def _grow(self, need: int) -> None:
        cap = self._n.shape[0]
        if need <= cap:
            return
        new = max(need, cap * 2)
        pad = ((0, new - cap), (0, 0))
        self._n = np.pad(self._n, pad)
        for m in self.metrics:
            self._s1[m] = np.pad(self._s1[m], pad)
            self._s2[m] = np.pad(self._s2[m], pad)

    def update(self, entities: np.ndarray, slots: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Add one observation per row (entity, slot, value of each metric)."""
        if len(entities) == 0:
            return
        rows = self._rows(entities, create=True)
        ok = rows >= 0
        rows, slots = rows[ok], slots[ok]
        width = self.slots + 1
        size = self._n.size
        flat = np.concatenate((rows * width + slots, rows * width + self.slots))  # the slot and the all-day cell
        self._n += np.bincount(flat, minlength=size).reshape(self._n.shape)
        for m in self.metrics:
            v = np.tile(values[m][ok], 2)
            self._s1[m] += np.bincount(flat, weights=v, minlength=size).reshape(self._n.shape)
            self._s2[m] += np.bincount(flat, weights=v * v, minlength=size).reshape(self._n.shape)
        over = self._n > self.memory
        if over.any():
            scale = np.where(over, self.memory / np.maximum(self._n, 1.0), 1.0)
            self._n *= scale
            for m in self.metrics:
                self._s1[m] *= scale
                self._s2[m] *= scale

    def stats(self, metric: str, entities: np.ndarray, slots: np.ndarray,
              min_windows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, standard deviation and observation count per row; slot first, else all-day; count 0
        (and mean/std 0) when neither has ``min_windows`` observations."""
        k = len(entities)
        mean, std, cnt = np.zeros(k), np.zeros(k), np.zeros(k)
        if k == 0 or not self._index:
            return mean, std, cnt
        rows = self._rows(entities, create=False)
        known = rows >= 0
        r = np.where(known, rows, 0)
        n_slot = np.where(known, self._n[r, slots], 0.0)
        n_all = np.where(known, self._n[r, self.slots], 0.0)
        use_slot = n_slot >= min_windows
        col = np.where(use_slot, slots, self.slots)
        n = np.where(use_slot, n_slot, np.where(n_all >= min_windows, n_all, 0.0))
        s1 = self._s1[metric][r, col]
        s2 = self._s2[metric][r, col]
        good = n > 0
        safe = np.where(good, n, 1.0)
        mean = np.where(good, s1 / safe, 0.0)
        var = np.where(good, s2 / safe - mean * mean, 0.0)
        return mean, np.sqrt(np.maximum(var, 0.0)), n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot (versioned), to persist learned baselines between runs."""
        k = len(self._index)
        return {"version": VERSION, "metrics": list(self.metrics), "slots": self.slots,
                "entities": list(self._index), "n": self._n[:k].tolist(),
                "s1": {m: self._s1[m][:k].tolist() for m in self.metrics},
                "s2": {m: self._s2[m][:k].tolist() for m in self.metrics}}

    def load_dict(self, data: dict[str, Any]) -> None:
        """Restore a snapshot from :meth:`to_dict` (same metrics and slots).

        Raises:
            ValueError: version, metrics or slots differ.
        """
        if data.get("version") != VERSION or tuple(data.get("metrics", ())) != self.metrics \
                or data.get("slots") != self.slots:
            raise ValueError("baseline snapshot does not match this detector (version, metrics or slots)")
        ents = [int(e) for e in data["entities"]]
        self._index = {e: i for i, e in enumerate(ents)}
        self._n = np.array(data["n"], dtype=np.float64).reshape(len(ents), self.slots + 1)
        for m in self.metrics:
            self._s1[m] = np.array(data["s1"][m], dtype=np.float64).reshape(self._n.shape)
            self._s2[m] = np.array(data["s2"][m], dtype=np.float64).reshape(self._n.shape)
        self._grow(64)
