"""The detector command caps glibc's malloc arenas before its threads start."""

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


def test_arenas_are_capped_unless_the_operator_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    command._limit_malloc_arenas()
    assert libc.calls == [(-8, command.MALLOC_ARENAS)]  # M_ARENA_MAX
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    command._limit_malloc_arenas()
    assert len(libc.calls) == 1  # theirs wins
