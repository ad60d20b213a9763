"""Helpers shared by the benchmarks: timing with `time.perf_counter`, medians, peer imports.

The machines this project runs on have 2 cores shared with other work, so every number is a median over
repeats, contenders are timed in alternation (one repeat of each, then the next round), and ratios are
only ever formed between numbers measured in the same run.
"""

from __future__ import annotations

import importlib
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

INSTALL_HINT = 'pip install -e ".[bench]"  (or: make bench)'


class PeerMissing(RuntimeError):
    """A peer library (an optional `bench` extra) cannot be imported."""


def require(*modules: str) -> None:
    """Import peer modules or raise `PeerMissing` naming the install command."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken install raising something else
            raise PeerMissing(f"{name} not importable ({exc.__class__.__name__}: {exc}); install with: {INSTALL_HINT}") from exc


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes (`fn` must block until its work is done)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def rate_summary(steps: int, seconds: list[float]) -> dict[str, Any]:
    """Steps/s from the median time of repeats, with the spread (min/max rate) for honesty."""
    med = median(seconds)
    return {
        "steps_per_repeat": steps,
        "repeats": len(seconds),
        "median_s": med,
        "steps_per_s": steps / med,
        "min_steps_per_s": steps / max(seconds),
        "max_steps_per_s": steps / min(seconds),
    }


def machine() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        info["loadavg_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"
