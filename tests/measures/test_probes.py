"""Linear probes (`mesascope.measures.probes`): closed-form ridge, folds over levels, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from mesascope.measures.probes import cross_validated_probe, fold_of_levels, ridge_fit, ridge_predict


def _primal(x, y, ridge):
    mean, scale = x.mean(0), x.std(0)
    z = (x - mean) / scale
    return np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))


@pytest.mark.parametrize("n,d", [(40, 8), (12, 30)])
def test_ridge_primal_and_dual_forms_agree_with_the_textbook_solution(n, d):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, 3))
    w, b, mean, scale = ridge_fit(x, y, 0.7)
    np.testing.assert_allclose(w, _primal(x, y, 0.7), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b, y.mean(0))
    # Centred features: the intercept is the mean target, whatever the penalty.
    np.testing.assert_allclose(ridge_predict((w, b, mean, scale), x).mean(0), y.mean(0), atol=1e-10)


def test_constant_units_are_ignored():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(30, 4)), np.ones((30, 1))], axis=1)
    w, *_ = ridge_fit(x, rng.normal(size=(30, 2)), 1.0)
    np.testing.assert_array_equal(w[-1], 0.0)


def test_folds_are_contiguous_blocks_of_levels():
    np.testing.assert_array_equal(fold_of_levels(10, 4), [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    with pytest.raises(ValueError, match="folds"):
        fold_of_levels(3, 4)


def _levels(n_levels, per_level, n_classes, rng):
    level = np.repeat(np.arange(n_levels), per_level)
    label = rng.integers(0, n_classes, n_levels)[level]
    return level, label, np.eye(n_classes, dtype=bool)[label]


def test_a_planted_code_is_read_and_shuffled_targets_are_not():
    rng = np.random.default_rng(2)
    level, label, correct = _levels(60, 8, 5, rng)
    x = np.concatenate([np.eye(5)[label] * 3.0, rng.normal(size=(len(label), 10))], axis=1) + 0.1 * rng.normal(size=(len(label), 15))
    score = cross_validated_probe(x, correct, level, folds=4, ridge=1.0, rng=np.random.default_rng(0), per_level=True)
    assert score.accuracy == 1.0 and score.n_states == 480
    assert score.shuffled < 0.45, score
    assert score.majority == pytest.approx(np.bincount(label).max() / len(label))


def test_noise_is_not_read():
    rng = np.random.default_rng(3)
    level, _, correct = _levels(60, 8, 4, rng)
    score = cross_validated_probe(rng.normal(size=(480, 12)), correct, level, folds=5, ridge=10.0,
                                  rng=np.random.default_rng(0), per_level=True)
    assert score.accuracy < score.majority + 0.1


def test_tied_actions_all_count_as_correct():
    # Every state allows actions 0 and 1: any prediction among them is right.
    rng = np.random.default_rng(4)
    level = np.repeat(np.arange(10), 5)
    correct = np.zeros((50, 4), bool)
    correct[:, :2] = True
    score = cross_validated_probe(rng.normal(size=(50, 3)), correct, level, folds=2, ridge=1.0,
                                  rng=np.random.default_rng(0), per_level=False)
    assert score.accuracy == 1.0 and score.majority == 1.0


def test_same_generator_seed_same_baseline():
    rng = np.random.default_rng(5)
    level, _, correct = _levels(20, 6, 3, rng)
    x = rng.normal(size=(120, 6))
    a = cross_validated_probe(x, correct, level, folds=4, ridge=1.0, rng=np.random.default_rng(9), per_level=True)
    b = cross_validated_probe(x, correct, level, folds=4, ridge=1.0, rng=np.random.default_rng(9), per_level=True)
    assert a == b
