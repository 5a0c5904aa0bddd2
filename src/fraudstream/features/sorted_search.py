"""``np.searchsorted`` for big sorted runs, about twice as fast, with a fence index.

Why: the feature stores answer every window query with binary searches in runs of millions of
keys; each level of a plain binary search is a dependent cache miss. A *fence* (every 64th key,
an array 64 times smaller that stays in cache) finds the 64-key block of each query; the
position inside the block is then found with six vectorised halving steps whose loads hit the
same few cache lines and are independent across queries (the CPU overlaps them).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["FENCE_MIN_SIZE", "FENCE_STRIDE", "build_fence", "fenced_search"]

IntArray = npt.NDArray[np.int64]
Side = Literal["left", "right"]

#: Keys per fence entry (a power of two).
FENCE_STRIDE = 64
_HALVES = [FENCE_STRIDE >> k for k in range(1, FENCE_STRIDE.bit_length())]  # 32, 16, ..., 1
#: Runs smaller than this (256 KiB of keys) are searched directly: they fit in cache anyway.
FENCE_MIN_SIZE = 1 << 15


def build_fence(keys: IntArray) -> IntArray | None:
    """The last key of every full block of :data:`FENCE_STRIDE` keys (None for small runs)."""
    if len(keys) < FENCE_MIN_SIZE:
        return None
    return np.ascontiguousarray(keys[FENCE_STRIDE - 1 :: FENCE_STRIDE])


def fenced_search(keys: IntArray, fence: IntArray | None, queries: IntArray, side: Side = "left") -> IntArray:
    """Same result as ``np.searchsorted(keys, queries, side)`` (``fence`` from :func:`build_fence`)."""
    if fence is None:
        return np.searchsorted(keys, queries, side=side)
    queries = np.asarray(queries, dtype=np.int64)
    full_blocks = len(fence)
    # Full blocks entirely before the answer; in the next block the last key is not before it.
    block = np.searchsorted(fence, queries, side=side)
    pos = block * FENCE_STRIDE
    inside = np.flatnonzero(block < full_blocks)
    if inside.size == queries.size:
        q = queries
        p = pos
    else:
        q = queries[inside]
        p = pos[inside]
    # Count the block's keys before the answer (at most STRIDE - 1) by binary lifting; every
    # index read stays inside the block, so inside the array.
    for half in _HALVES:
        probe = keys[p + (half - 1)]
        step = (probe <= q) if side == "right" else (probe < q)
        p += half * step
    if inside.size != queries.size:
        pos[inside] = p
        tail = np.flatnonzero(block >= full_blocks)
        start = full_blocks * FENCE_STRIDE
        pos[tail] = start + np.searchsorted(keys[start:], queries[tail], side=side)
    return pos
