"""Exact string id -> dense index interning, vectorised with numpy.

Why not a ``dict``: with a million customers a ``dict.get`` costs several dependent cache
misses (hash table, key object, value object), about 0.6 µs a lookup, which alone would eat
most of the per-transaction budget of a 100k-row batch. Here the ids of a whole batch are
hashed (Python's ``hash``, one C call per id), looked up in an open-addressing table held in two
numpy arrays (independent loads that the CPU overlaps), and every hit is verified by comparing
the id with the stored one (``np.str_`` arrays), so the result is exact: two ids whose hashes
collide get different indices (the later one goes to a small overflow dict).

Indices are dense (``0, 1, 2, ...``, never reused) so that they can be packed into the window
stores' keys.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraudstream.features.key_table import hash_ids

__all__ = ["Interner"]

IntArray = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier


class Interner:
    """Dense indices for string ids (customer or terminal ids)."""

    def __init__(self, capacity: int = 1024) -> None:
        bits = max(4, int(capacity - 1).bit_length() + 1)  # load factor <= 1/2
        self._init_table(bits)
        self._hashes = np.zeros(0, dtype=np.int64)  # by index
        self._names: npt.NDArray[np.str_] = np.zeros(0, dtype="<U1")  # by index
        self._n = 0
        # Ids whose hash equals the hash of an earlier, different id (practically never used).
        self._overflow: dict[str, int] = {}

    def _init_table(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._slot_hash = np.zeros(1 << bits, dtype=np.int64)
        self._slot_index = np.full(1 << bits, -1, dtype=np.int64)  # -1 = empty

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return self._slot_hash.nbytes + self._slot_index.nbytes + self._hashes.nbytes + self._names.nbytes

    def names(self, index: npt.ArrayLike) -> list[str]:
        """The ids of the given indices."""
        return self._names[np.asarray(index, dtype=np.int64)].tolist()

    # ------------------------------------------------------------------ table

    def _home(self, h: IntArray) -> IntArray:
        return ((h.view(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _probe(self, h: IntArray) -> IntArray:
        """Index stored for each hash in the table, or -1."""
        out = np.full(h.shape, -1, dtype=np.int64)
        pending = np.arange(len(h), dtype=np.int64)
        slot = self._home(h)
        while pending.size:
            s = slot[pending]
            occupant = self._slot_index[s]
            hit = (occupant >= 0) & (self._slot_hash[s] == h[pending])
            out[pending[hit]] = occupant[hit]
            cont = (occupant >= 0) & ~hit
            pending = pending[cont]
            slot[pending] = (s[cont] + 1) & self._mask
        return out

    def _place(self, h: IntArray, index: IntArray) -> None:
        """Put hashes known to be absent (and distinct) into empty slots."""
        pending = np.arange(len(h), dtype=np.int64)
        slot = self._home(h)
        while pending.size:
            s = slot[pending]
            free = self._slot_index[s] < 0
            cand = pending[free]
            cand_slots = s[free]
            if cand.size:
                taken, first = np.unique(cand_slots, return_index=True)
                winners = cand[first]
                self._slot_hash[taken] = h[winners]
                self._slot_index[taken] = index[winners]
                placed = np.zeros(len(h), dtype=bool)
                placed[winners] = True
                pending = pending[~placed[pending]]
            # Everyone still pending moves on (their slot is now occupied).
            slot[pending] = (slot[pending] + 1) & self._mask

    def _grow_if_needed(self, extra: int) -> None:
        needed = self._n + extra
        if 2 * needed <= (1 << self._bits):
            return
        bits = self._bits
        while 2 * needed > (1 << bits):
            bits += 1
        self._init_table(bits)
        in_table = np.ones(self._n, dtype=bool)
        if self._overflow:
            in_table[list(self._overflow.values())] = False
        idx = np.flatnonzero(in_table)
        self._place(self._hashes[idx], idx)

    def _append(self, names: npt.NDArray[np.str_], hashes: IntArray) -> IntArray:
        k = len(names)
        index = np.arange(self._n, self._n + k, dtype=np.int64)
        width = max(self._names.dtype.itemsize, names.dtype.itemsize) // 4
        if len(self._names) < self._n + k or self._names.dtype.itemsize // 4 < width:
            cap = len(self._names) if len(self._names) >= self._n + k else 2 * len(self._names)
            cap = max(cap, self._n + k, 16)
            grown = np.zeros(cap, dtype=f"<U{max(width, 1)}")
            grown[: self._n] = self._names[: self._n]
            self._names = grown
            hashes_grown = np.zeros(cap, dtype=np.int64)
            hashes_grown[: self._n] = self._hashes[: self._n]
            self._hashes = hashes_grown
        self._names[self._n : self._n + k] = names
        self._hashes[self._n : self._n + k] = hashes
        self._n += k
        return index

    # ------------------------------------------------------------------ public

    def lookup(self, ids: list[str], *, add: bool = True) -> IntArray:
        """Index of each id; new ids get the next indices (``add``) or -1 (``add=False``)."""
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        h = hash_ids(ids, n)
        # At the stored names' width the conversion is about twice as fast as ``dtype=str``
        # (which first measures every id); numpy would cut a longer id to that width, so a
        # batch with one is converted at its own.
        width = self._names.dtype.itemsize // 4
        text = np.asarray(ids, dtype=self._names.dtype if max(map(len, ids)) <= width else str)
        idx = self._probe(h)
        found = np.flatnonzero(idx >= 0)
        if found.size:
            wrong = found[self._names[idx[found]] != text[found]]
            if wrong.size:  # hash collision with another id: the overflow dict decides
                idx[wrong] = -1
                for i in wrong.tolist():
                    idx[i] = self._overflow.get(ids[i], -1)
                    if idx[i] < 0 and add:
                        idx[i] = self._overflow[ids[i]] = self._append(text[i : i + 1], h[i : i + 1])[0]
        missing = np.flatnonzero(idx < 0)
        if missing.size and add:
            # Only ids absent from the table (collisions are handled above).
            missing = missing[self._probe(h[missing]) < 0]
            if missing.size:
                uniq, first, inverse = np.unique(text[missing], return_index=True, return_inverse=True)
                new_h = h[missing[first]]
                # Distinct new ids sharing a hash: the first goes to the table, the others overflow.
                order = np.argsort(new_h, kind="stable")
                dup_h = np.zeros(len(uniq), dtype=bool)
                dup_h[order[1:]] = new_h[order[1:]] == new_h[order[:-1]]
                self._grow_if_needed(len(uniq))
                new_index = self._append(uniq, new_h)
                self._place(new_h[~dup_h], new_index[~dup_h])
                for j in np.flatnonzero(dup_h).tolist():
                    self._overflow[str(uniq[j])] = int(new_index[j])
                idx[missing] = new_index[inverse]
        return idx

    def retain(self, keep: npt.NDArray[np.bool_]) -> IntArray:
        """Forget the ids whose ``keep`` flag (by index) is False and renumber the others densely,
        in their current order. Returns old index -> new index (-1 for forgotten ids).

        Why: indices are packed into the stores' keys with a bounded width, so a long-running
        state renumbers its live ids from time to time instead of growing forever. The mapping
        is increasing, so keys packed from the new indices keep their sorted order.
        """
        keep = np.asarray(keep, dtype=bool)
        if len(keep) != self._n:
            raise ValueError("one flag per interned id")
        remap = np.full(self._n, -1, dtype=np.int64)
        kept = np.flatnonzero(keep)
        remap[kept] = np.arange(len(kept), dtype=np.int64)
        names = self._names[kept].copy()
        hashes = self._hashes[kept].copy()
        overflow = {name: int(remap[i]) for name, i in self._overflow.items() if remap[i] >= 0}
        self._names, self._hashes, self._n, self._overflow = names, hashes, len(kept), overflow
        bits = 4
        while 2 * max(1, self._n) > (1 << bits):
            bits += 1
        self._init_table(bits)
        in_table = np.ones(self._n, dtype=bool)
        if overflow:
            in_table[list(overflow.values())] = False
        idx = np.flatnonzero(in_table)
        self._place(self._hashes[idx], idx)
        return remap
