"""The detector command tunes glibc's malloc (arenas, mmap threshold) before its threads start."""

from __future__ import annotations

import ctypes

import pytest

from fraudstream.pipeline import command


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_arenas_are_capped_and_the_mmap_threshold_fixed_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    libc = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    command._limit_malloc_arenas()
    # M_ARENA_MAX, M_MMAP_THRESHOLD
    assert libc.calls == [(-8, command.MALLOC_ARENAS), (-3, command.MMAP_THRESHOLD)]
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    command._limit_malloc_arenas()
    assert len(libc.calls) == 2  # theirs win
