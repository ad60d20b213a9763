"""Per-stage wall time of a run, audit or sweep point, with what JAX compiled in each stage (`--profile`).

`StageTimer` accumulates wall time per named stage (`with timer.stage("goal posterior"): ...`). JAX
dispatches work asynchronously, so each stage should end by reading its results back to NumPy (the
audit's stages all do), or the time lands in whichever later stage waits for it. JAX's own monitoring
events are counted into the active stage: backend compilations (how many, how many seconds) and hits of
the persistent compilation cache (`mesascope._jax_setup`), so a profile shows what a second identical
run did not have to compile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax

from mesascope.programs import PERSISTENT_HIT_EVENT, PROGRAM_HIT_EVENT

__all__ = ["BACKEND_COMPILE_EVENT", "NULL_TIMER", "StageTimer", "record_events"]

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
"""JAX's `jax.monitoring` duration event for every program a process needs (compiled or from its cache)."""
_ACTIVE: list[StageTimer] = []


def _on_duration(event: str, duration: float, **_: Any) -> None:
    # Fired for every program JAX needs, whether XLA compiles it or the persistent cache supplies it.
    if event == BACKEND_COMPILE_EVENT:
        for timer in _ACTIVE:
            timer._count("compiles", 1, duration)


def _on_event(event: str, **_: Any) -> None:
    if event == PERSISTENT_HIT_EVENT:
        for timer in _ACTIVE:
            timer._count("cache_hits", 1, 0.0)
    elif event == PROGRAM_HIT_EVENT:
        # A program `mesascope.programs.cached_jit` loaded whole: needed and supplied from the cache, as a
        # persistent-cache hit is, but with no compile event of its own.
        for timer in _ACTIVE:
            timer._count("compiles", 1, 0.0)
            timer._count("cache_hits", 1, 0.0)


def record_events(events: Sequence[tuple[str, float | None]]) -> None:
    """Count JAX events recorded in another process (`mesascope.experiments.helper`) into the active stages.

    Args:
        events: `(event, duration)` pairs, `duration` None for a plain event, as the listeners got them.
    """
    for event, duration in events:
        if duration is None:
            _on_event(event)
        else:
            _on_duration(event, duration)


# Listeners cannot be removed, so they are registered once and forward to whichever timers are active.
jax.monitoring.register_event_duration_secs_listener(_on_duration)
jax.monitoring.register_event_listener(_on_event)


@dataclass
class StageTimer:
    """Wall seconds, compilations and persistent-cache hits per stage (in the order stages first ran).

    Attributes:
        enabled: A disabled timer measures nothing (`NULL_TIMER`), so code can always call `stage`.
    """

    enabled: bool = True
    _seconds: dict[str, float] = field(default_factory=dict)
    _compiles: dict[str, int] = field(default_factory=dict)
    _compile_seconds: dict[str, float] = field(default_factory=dict)
    _cache_hits: dict[str, int] = field(default_factory=dict)
    _current: list[str] = field(default_factory=list)

    def _count(self, what: str, n: int, seconds: float) -> None:
        name = self._current[-1] if self._current else "other"
        if what == "compiles":
            self._compiles[name] = self._compiles.get(name, 0) + n
            self._compile_seconds[name] = self._compile_seconds.get(name, 0.0) + seconds
        else:
            self._cache_hits[name] = self._cache_hits.get(name, 0) + n

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under `name` (nested stages count in the innermost one only)."""
        if not self.enabled:
            yield
            return
        outer = self._current[-1] if self._current else None
        if outer is not None:
            self._seconds[outer] = self._seconds.get(outer, 0.0) + time.perf_counter() - self._started
        else:
            _ACTIVE.append(self)
        self._current.append(name)
        self._started = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - self._started
            self._current.pop()
            if not self._current:
                _ACTIVE.remove(self)
            self._started = time.perf_counter()

    def as_dict(self) -> dict[str, Any]:
        """`{"stages": {name: {"seconds", "compiled", "from_cache", "compile_seconds"}}, "total_seconds", ...}`.

        `compiled` counts programs XLA compiled, `from_cache` those loaded from the persistent compilation
        cache instead, `compile_seconds` the time both took.
        """
        stages = {
            name: {
                "seconds": round(sec, 4),
                "compiled": self._compiles.get(name, 0) - self._cache_hits.get(name, 0),
                "from_cache": self._cache_hits.get(name, 0),
                "compile_seconds": round(self._compile_seconds.get(name, 0.0), 4),
            }
            for name, sec in self._seconds.items()
        }
        return {
            "stages": stages,
            "total_seconds": round(sum(self._seconds.values()), 4),
            "compiled": sum(self._compiles.values()) - sum(self._cache_hits.values()),
            "from_cache": sum(self._cache_hits.values()),
            "compile_seconds": round(sum(self._compile_seconds.values()), 4),
        }


NULL_TIMER = StageTimer(enabled=False)
"""A timer that measures nothing (the default when `--profile` is not given)."""
