"""cancer-shift-v0: exact risks of linear rules, Bayes rules, and the non-vanishing deployment regret."""

from __future__ import annotations

import numpy as np
import pytest

from mesascope.scenarios.cancer import bayes_rule, linear_risk, make_blob


def test_linear_risk_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu1, sigma, pi = make_blob(2.0), 1.3, 0.3
    w, b = rng.normal(size=64), 0.4
    n = 400_000
    y = rng.random(n) < pi
    x = y[:, None] * mu1 + sigma * rng.normal(size=(n, 64))
    err = np.mean((x @ w + b > 0) != y)
    assert linear_risk(w, b, mu1, sigma, pi) == pytest.approx(err, abs=4 * np.sqrt(err * (1 - err) / n))


@pytest.mark.parametrize("pi", [0.1, 0.5, 0.8])
def test_bayes_rule_beats_every_perturbation(pi):
    rng = np.random.default_rng(1)
    mu1, sigma = make_blob(2.0), 1.0
    w, b = bayes_rule(mu1, sigma, pi)
    best = linear_risk(w, b, mu1, sigma, pi)
    for _ in range(50):
        dw, db = 0.3 * rng.normal(size=64), 0.5 * rng.normal()
        assert linear_risk(w + dw, b + db, mu1, sigma, pi) >= best - 1e-12
    # equal base rates: the classic 2-Gaussian Bayes error Phi(-Delta / 2), Delta = |mu1| / sigma = 2
    if pi == 0.5:
        assert best == pytest.approx(0.15865525393145707, abs=1e-12)


def test_training_bayes_rule_has_positive_deploy_regret_only_under_shift():
    mu1, sigma = make_blob(2.0), 1.0
    r = lambda rule, pi: linear_risk(*rule, mu1, sigma, pi)  # noqa: E731
    assert r(bayes_rule(mu1, sigma, 0.5), 0.1) - r(bayes_rule(mu1, sigma, 0.1), 0.1) > 0.05
    assert r(bayes_rule(mu1, sigma, 0.5), 0.5) - r(bayes_rule(mu1, sigma, 0.5), 0.5) == 0


@pytest.mark.slow
def test_cancer_shift_fast_run_regret_stays_at_the_limit(reproduced, tmp_path):
    result = reproduced("cancer-shift-v0")
    assert result["systems"][0]["verdicts"]["wentworth"]["label"] == "outer alignment failure"
    assert (tmp_path / "cancer-shift-v0" / "plots" / "regret-vs-data.png").exists()
