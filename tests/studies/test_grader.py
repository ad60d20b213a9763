"""grader-v0 (seed 003): best-of-n KL, the KL-regularised Gaussian policy, Gao et al.'s fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from mesascope.scenarios.grader import (
    bon_kl,
    bon_kl_estimate,
    fit_bon,
    fit_rl,
    gaussian_policy,
    quadratic_features,
)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 100, 5000])
def test_best_of_n_kl_formula_is_the_exact_integral(n):
    # density ratio of best-of-n in the grader-score quantile u is n u^(n-1)
    # the same integral in s = -log u (smooth for large n): int_0^inf n e^(-n s) (log n - (n - 1) s) ds
    val, err = integrate.quad(lambda s: n * math.exp(-n * s) * (math.log(n) - (n - 1) * s), 0, np.inf, limit=400)
    assert bon_kl(n) == pytest.approx(math.log(n) - (n - 1) / n, abs=0)
    assert bon_kl(n) == pytest.approx(val, abs=1e-7 + 10 * err)


@pytest.mark.parametrize("n", [2, 16, 256])
def test_best_of_n_kl_estimate_matches_within_error(n):
    rng = np.random.default_rng(n)
    scores = rng.standard_normal((4000, n))  # any continuous grader score
    chosen = scores.max(1)
    ref = np.sort(rng.standard_normal(400_000))
    cdf = np.searchsorted(ref, chosen, side="right") / len(ref)
    est, se = bon_kl_estimate(cdf, n)
    assert abs(est - bon_kl(n)) < 4 * se


def test_gaussian_policy_is_the_tilted_base_and_its_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    d = 3
    g = rng.normal(size=d)
    a = rng.normal(size=(d, d))
    h = a @ a.T / d
    mean, cov, kl = gaussian_policy(g, h, b=0.7)
    # tilted density ∝ N(0,I) exp((g.z - z^T H z / 2) / b): stationarity of its log-density at the mean
    grad = -mean + (g - h @ mean) / 0.7
    assert np.allclose(grad, 0, atol=1e-10)
    z = rng.multivariate_normal(mean, cov, size=200_000)
    logp = -0.5 * np.einsum("ni,ij,nj->n", z - mean, np.linalg.inv(cov), z - mean) - 0.5 * np.linalg.slogdet(cov)[1]
    logq = -0.5 * np.sum(z * z, 1)
    assert np.mean(logp - logq) == pytest.approx(kl, abs=0.02)
    assert gaussian_policy(g, -4 * np.eye(d), b=1.0) is None  # unbounded grader: no such policy


def test_gao_fits_recover_known_coefficients():
    d = np.linspace(0.2, 4, 30)
    fb = fit_bon(d, d * (2.0 - 0.5 * d))
    assert fb["alpha"] == pytest.approx(2.0) and fb["beta"] == pytest.approx(0.5) and fb["d_peak"] == pytest.approx(2.0)
    fr = fit_rl(d, d * (1.5 - 0.75 * np.log(d)))
    assert fr["alpha"] == pytest.approx(1.5) and fr["d_peak"] == pytest.approx(math.exp(1.5 / 0.75 - 1))
    assert fr["r2"] == pytest.approx(1.0)


def test_quadratic_features_represent_any_quadratic():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 4))
    q = rng.normal(size=(4, 4))
    y = 0.3 + z @ np.arange(4) + np.einsum("ni,ij,nj->n", z, q, z)
    coef, *_ = np.linalg.lstsq(quadratic_features(z), y, rcond=None)
    assert np.allclose(quadratic_features(z) @ coef, y)


@pytest.mark.slow
def test_grader_fast_run_shows_overoptimization(reproduced, tmp_path):
    reproduced("grader-v0")
    assert (tmp_path / "grader-v0" / "plots" / "goodhart.png").exists()
