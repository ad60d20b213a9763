"""nested-v0 (seed 004): EPIC of linear outcome rewards, the triangle bound, menu scores, a real run."""

from __future__ import annotations

import numpy as np
import pytest

from mesascope.scenarios.nested import K, linear_epic, menu_score


def test_linear_epic_matches_the_pearson_distance_of_sampled_rewards():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(K, K))
    cov = a @ a.T
    w, v = rng.normal(size=K), rng.normal(size=K)
    phi = rng.multivariate_normal(np.zeros(K), cov, size=400_000)
    rho = np.corrcoef(phi @ w, phi @ v)[0, 1]
    assert linear_epic(w, v, cov) == pytest.approx(np.sqrt((1 - rho) / 2), abs=2e-3)
    # invariant to positive rescaling, 0 for the same direction, 1 for the opposite one
    assert linear_epic(3 * w, 0.5 * v, cov) == pytest.approx(linear_epic(w, v, cov), abs=1e-12)
    assert linear_epic(w, 2 * w, cov) == pytest.approx(0.0, abs=1e-7)
    assert linear_epic(w, -w, cov) == pytest.approx(1.0)


def test_triangle_inequality_on_random_triples():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a = rng.normal(size=(K, K))
        cov = a @ a.T + 1e-3 * np.eye(K)
        x, y, z = rng.normal(size=(3, K))
        assert linear_epic(x, z, cov) <= linear_epic(x, y, cov) + linear_epic(y, z, cov) + 1e-12


def test_menu_score_is_one_for_the_evaluator_and_zero_on_average_for_random_choosers():
    rng = np.random.default_rng(2)
    menus = rng.normal(size=(5000, 8, K))
    w = rng.normal(size=K)
    assert menu_score(w, w, menus) == pytest.approx(1.0)
    random_scores = [menu_score(rng.normal(size=K), w, menus) for _ in range(200)]
    assert abs(np.mean(random_scores)) < 0.05


def test_nested_fast_run_bounds_the_chain(reproduced):
    result = reproduced("nested-v0")
    for s in result["findings"]["per_seed"]:
        assert s["end_to_end"]["epic_deploy"] <= s["end_to_end"]["bound"] + 1e-12
    seeds = len(result["systems"])
    assert len(result["variants"]) == 2 * seeds  # every link of every chain is judged
    assert all(s["invariants"]["wentworth_corollary"]["holds"] for s in result["systems"] + result["variants"])
