"""Bootstrap estimates over levels (`mesascope.measures.estimates`, SPEC.md section 2) against a direct
loop over the resamples: each resample's mean over the informative levels it drew."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mesascope.measures.estimates import CONFIDENCE, LevelResample, estimate_columns


def _by_loop(values, mask, resample):
    """Per column `(mean, lo, hi, n)`, one resample at a time (the definition, written out)."""
    out = []
    for c in range(values.shape[1]):
        boot = []
        for row in resample.idx:
            drawn = mask[row, c]
            if drawn.any():
                boot.append(values[row, c][drawn].mean())
        boot = np.asarray(boot)
        boot = boot[np.isfinite(boot)]
        tail = (1.0 - CONFIDENCE) / 2.0
        lo, hi = np.quantile(boot, [tail, 1.0 - tail])
        out.append((values[mask[:, c], c].mean(), lo, hi, int(mask[:, c].sum())))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intervals_equal_the_loop_over_resamples(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(40, 3))
    mask = rng.random((40, 3)) < [0.9, 0.5, 0.1]
    resample = LevelResample.draw(jax.random.key(seed), 40, resamples=300)
    assert resample.draws.sum(1).tolist() == [40.0] * 300
    for got, (mean, lo, hi, n) in zip(estimate_columns(values, mask, resample), _by_loop(values, mask, resample)):
        assert got.n == n
        np.testing.assert_allclose([got.mean, got.lo, got.hi], [mean, lo, hi], rtol=0, atol=1e-12)


def test_a_non_finite_value_spoils_only_the_resamples_that_drew_it():
    values = np.linspace(0.0, 1.0, 30)[:, None]
    values[7, 0] = np.inf
    mask = np.ones((30, 1), bool)
    resample = LevelResample.draw(jax.random.key(5), 30, resamples=400)
    got = estimate_columns(values, mask, resample)[0]
    _, lo, hi, _ = _by_loop(values, mask, resample)[0]
    assert np.isfinite(got.lo) and np.isfinite(got.hi)
    np.testing.assert_allclose([got.lo, got.hi], [lo, hi], rtol=0, atol=1e-12)


def test_sums_of_whole_numbers_are_exact():
    # A score that is exactly 1 on every drawn level keeps an interval of exactly [1, 1].
    values = np.ones((25, 2))
    mask = np.ones((25, 2), bool)
    mask[:5, 1] = False
    for e in estimate_columns(values, mask, LevelResample.draw(jax.random.key(0), 25)):
        assert (e.mean, e.lo, e.hi) == (1.0, 1.0, 1.0)
