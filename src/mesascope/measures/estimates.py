"""Means over informative levels with bootstrap intervals (SPEC.md section 2).

Values are exact per level, but the audited levels are a sample of a distribution, so every mean that
feeds a property is reported as an `Estimate`: the mean over the levels that are *informative* for the
quantity (for a normalised score `J_R`: the levels where `V_R^* - V_R^unif` is not numerically zero,
`mesascope.measures.scores.informative_levels`), how many there were, a 95% percentile-bootstrap interval
over the audited levels, and the plain mean over all levels for comparison (where uninformative levels
count as `J = 1`, the convention SPEC.md now forbids in any mean that feeds a property).

The bootstrap resamples *levels*, the sampling unit, with one index matrix per split
(`LevelResample`) shared by every quantity of that split, so intervals are paired across quantities
and reproducible from the audit's key. A resample's mean of an informative-only quantity is its mean
over the informative levels that resample drew (a ratio estimator: the count of informative levels
varies from resample to resample as it would between samples).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from mesascope.types import MesascopeError

__all__ = ["CONFIDENCE", "RESAMPLES", "Estimate", "LevelResample", "estimate", "estimate_columns"]

RESAMPLES = 2000
"""Bootstrap resamples per split: the interval's end points move by about 0.01 of their width between keys."""

CONFIDENCE = 0.95
"""Coverage of every interval (SPEC.md section 2)."""


@dataclass(frozen=True)
class Estimate:
    """A mean over the informative levels of an audited sample, with its 95% bootstrap interval.

    Attributes:
        mean: Mean over the informative levels (None when there are none).
        lo, hi: The interval's end points (None when there is no interval: no informative level, or a
            number that is not a mean over levels, e.g. a closed form in a study).
        n: Informative levels behind `mean` (None for a number that is not a mean over levels).
        n_levels: Levels audited (None likewise).
        mean_all: The mean over all audited levels, uninformative ones counted as they come out of
            the formula (`J = 1`), for comparison only.
    """

    mean: float | None
    lo: float | None = None
    hi: float | None = None
    n: int | None = None
    n_levels: int | None = None
    mean_all: float | None = None

    @classmethod
    def exact(cls, value: float | None) -> Estimate:
        """A number that is not a mean over sampled levels (no count, no interval)."""
        return cls(None if value is None else float(value), mean_all=None if value is None else float(value))

    def complement(self) -> Estimate:
        """`1 - x` (e.g. a training gap from `J_base`), the interval's ends swapped."""

        def flip(x: float | None) -> float | None:
            return None if x is None else 1.0 - x

        return Estimate(flip(self.mean), flip(self.hi), flip(self.lo), self.n, self.n_levels, flip(self.mean_all))

    @property
    def has_interval(self) -> bool:
        """True when `lo` and `hi` are known."""
        return self.lo is not None and self.hi is not None

    def straddles(self, threshold: float) -> bool:
        """True when the interval contains `threshold` (the decision is *marginal*); False without one."""
        return self.has_interval and self.lo <= threshold <= self.hi  # type: ignore[operator]

    def too_few(self, n_min: int) -> bool:
        """True when this is a mean over levels and fewer than `n_min` of them are informative."""
        return self.n is not None and self.n < n_min

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | float | None) -> Estimate:
        """From `to_dict` output (a bare number is read as `Estimate.exact`).

        Raises:
            MesascopeError: on unknown keys.
        """
        if data is None or isinstance(data, int | float):
            return cls.exact(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MesascopeError(f"unknown Estimate field(s) {unknown}; valid: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class LevelResample:
    """The bootstrap's index matrix for one split: int `[B, L]`, level indices drawn with replacement."""

    idx: np.ndarray

    @classmethod
    def draw(cls, key: jax.Array, n_levels: int, resamples: int = RESAMPLES) -> LevelResample:
        """`resamples` resamples of `n_levels` levels from `key` (deterministic for a key)."""
        if n_levels < 1:
            raise MesascopeError(f"cannot resample {n_levels} levels")
        idx = np.asarray(jax.random.randint(key, (resamples, n_levels), 0, n_levels))
        return cls(idx)

    @property
    def n_levels(self) -> int:
        return int(self.idx.shape[1])

    @functools.cached_property
    def draws(self) -> np.ndarray:
        """float64 `[B, L]`: how often each resample drew each level (its rows sum to `L`)."""
        b, n = self.idx.shape
        flat = (np.arange(b)[:, None] * n + self.idx).ravel()
        return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def estimate_columns(values: np.ndarray, informative: np.ndarray | None, resample: LevelResample) -> list[Estimate]:
    """One `Estimate` per column of a `[L, C]` array of per-level values.

    Args:
        values: float `[L, C]`, exact per-level values (e.g. `J` per level and objective).
        informative: bool `[L, C]` (or `[L]`, shared by every column), which levels count; None = all.
        resample: The split's `LevelResample` (its `L` must match).

    Returns:
        `C` estimates, in column order.
    """
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_levels, cols = values.shape
    if resample.n_levels != n_levels:
        raise MesascopeError(f"the resample has {resample.n_levels} levels but the values have {n_levels}")
    mask = np.ones_like(values, bool) if informative is None else np.asarray(informative, bool)
    if mask.ndim == 1:
        mask = np.repeat(mask[:, None], cols, 1)
    mask = np.broadcast_to(mask, values.shape)
    n = mask.sum(0)
    means = np.where(n > 0, np.where(mask, values, 0.0).sum(0) / np.maximum(n, 1), np.nan)
    kept = np.where(mask, values, 0.0)
    if np.isfinite(kept).all():
        # A resample's sum is its draw counts times the values: one [B, L] x [L, C] product instead of
        # gathering [B, L, C] (the same sums, added in another order).
        counts, sums = resample.draws @ mask.astype(np.float64), resample.draws @ kept
    else:
        # A non-finite value must spoil only the resamples that drew its level (0 x inf is not 0).
        picked_mask = mask[resample.idx]  # [B, L, C]
        counts = picked_mask.sum(1)
        sums = np.where(picked_mask, values[resample.idx], 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    tail = (1.0 - CONFIDENCE) / 2.0
    out = []
    for c in range(cols):
        if n[c] == 0:
            out.append(Estimate(None, None, None, 0, n_levels, float(values[:, c].mean())))
            continue
        col = boot[:, c]
        col = col[np.isfinite(col)]
        lo, hi = np.quantile(col, [tail, 1.0 - tail])
        out.append(Estimate(float(means[c]), float(lo), float(hi), int(n[c]), n_levels, float(values[:, c].mean())))
    return out


def estimate(values: np.ndarray, informative: np.ndarray | None, resample: LevelResample) -> Estimate:
    """`estimate_columns` for one quantity: `values` and `informative` are `[L]`."""
    return estimate_columns(np.asarray(values)[:, None], None if informative is None else np.asarray(informative)[:, None], resample)[0]
