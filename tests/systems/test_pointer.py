"""The pointer mesa-optimizer and corrigible pseudo-alignment (SPEC.md sections 1, 5 and 7, issue 4)."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.experiments.run import AuditConfig, load_systems, run
from mesascope.experiments.train import MESA_PRESETS, train_mesa_systems
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.systems.mesa import MesaOptimizer
from mesascope.systems.pointer import (
    PointerMesaOptimizer,
    RewardModelError,
    fit_reward_model,
    ridge_regression,
    train_reward_model,
)


def test_ridge_regression_recovers_a_known_reward_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    w_true = np.array([1.0, -0.5, 2.0, 0.25])
    np.testing.assert_allclose(ridge_regression(x, x @ w_true, ridge=0.0), w_true, atol=1e-12)
    # Rows with weight zero carry no evidence: corrupting them changes nothing.
    y = x @ w_true
    y_bad, c = y.copy(), np.ones(40)
    y_bad[:5], c[:5] = 100.0, 0.0
    np.testing.assert_allclose(ridge_regression(x, y_bad, c, ridge=0.0), w_true, atol=1e-12)


def test_identical_columns_split_the_weight_equally():
    c = np.array([1.0, 0, 0, 1, 0, 1, 0, 0])  # n = 3 rewarded rows where both columns are on
    x = np.stack([c, c], -1)
    lam = 0.5
    w = ridge_regression(x, c, ridge=lam)
    np.testing.assert_allclose(w, [3 / (6 + lam)] * 2, rtol=1e-12)  # argmin n(1-2a)^2 + 2 lam a^2
    with pytest.raises(RewardModelError, match="collinear"):
        ridge_regression(x, c, ridge=0.0)
    with pytest.raises(RewardModelError, match="x \\[N, M\\]"):
        ridge_regression(x, c[:-1])


@pytest.fixture(scope="module")
def corner():
    sc = get_scenario("cheese-corner-pointer-v0")
    names, weights = sc.weight_matrix()
    return sc, PointerMesaOptimizer(sc.spec, beta=100.0), jnp.asarray(weights[names.index("base")])


def test_the_reward_model_is_exact_where_the_data_tells_cheese_from_corner(corner):
    sc, system, w_base = corner
    assert system.points_to_base and not MesaOptimizer.points_to_base
    assert system.feature_names == ("cheese", "corner", "up", "right")
    # Deploy levels never put the cheese on the corner: unpenalised least squares recovers the base
    # objective exactly.
    levels = sc.sample_levels(jax.random.key(1), 8, "deploy")
    theta = np.asarray(fit_reward_model(system, levels, tabularize_levels(sc.spec, levels), w_base, ridge=0.0).theta)
    np.testing.assert_allclose(theta, [1.0, 0.0, 0.0, 0.0], atol=1e-5)
    # Training levels always do: the two columns coincide and ridge splits the weight.
    levels = sc.sample_levels(jax.random.key(1), 8, "train")
    theta = np.asarray(fit_reward_model(system, levels, tabularize_levels(sc.spec, levels), w_base).theta)
    assert theta[0] == pytest.approx(theta[1], abs=1e-6) and theta[0] == pytest.approx(0.5, abs=1e-3)
    np.testing.assert_allclose(theta[2:], 0.0, atol=1e-3)


def test_only_a_pointer_can_be_trained_by_the_reward_model(corner):
    sc, _, w_base = corner
    levels = sc.sample_levels(jax.random.key(1), 2, "train")
    with pytest.raises(RewardModelError, match="PointerMesaOptimizer"):
        train_reward_model(MesaOptimizer(sc.spec), levels, tabularize_levels(sc.spec, levels), w_base)


def test_same_key_gives_identical_weights():
    sc = get_scenario("cheese-corner-pointer-v0")
    cfg = dataclasses.replace(MESA_PRESETS["fast"], method="reward-model", beta=100.0, n_levels=8, steps=1)
    first, curves = train_mesa_systems(sc, cfg, [3])
    second, _ = train_mesa_systems(sc, cfg, [3])
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert curves["base_value"].shape == (1, 1) and curves["base_value"][0, 0] > 0


def test_the_pointer_is_measured_as_corrigible_pseudo_alignment(tmp_path):
    from mesascope.properties import Thresholds

    # 4 and 8 audited levels (a smoke run): n_min lowered to match, so the means decide the properties.
    result = run("cheese-corner-pointer-v0", seeds=1, out=tmp_path / "p", audit=AuditConfig(n_train=4, n_deploy=8),
                 overrides={"n_levels": 8}, thresholds=Thresholds(n_min=4))
    assert result["optimizer"] == "mesa-reward-model" and result["config"]["beta"] == 100.0
    system = result["systems"][0]
    weights = system["mesa_objective"]["weights"]
    assert set(weights) == {"cheese", "corner", "up", "right"}
    assert weights["cheese"] == pytest.approx(weights["corner"], abs=1e-6)
    m = system["measurements"]
    assert m["mesa_points_to_base"] is True and m["mesa_uses_deploy_feature"] is False
    assert m["j_base_train"] >= 0.9  # training-optimal: the pointer's model is right on training levels
    assert m["epic_mesa_base_train"] < 1e-3 < 0.2 < m["epic_mesa_base_deploy"]
    assert system["properties"]["inner_alignment"]["state"] == "fails"
    assert system["verdicts"]["pseudo_alignment"]["label"] == "corrigible pseudo-alignment"
    _, _, _, loaded = load_systems(tmp_path / "p")
    assert loaded[0].points_to_base is True


@pytest.mark.parametrize("scenario_id", ["cheese-corner-mesa-v0", "deceptive-v0"])
def test_other_mesa_optimizers_do_not_point_to_the_base_objective(tmp_path, scenario_id):
    # A saved run folder is all the audit reads; the flag comes from the system's class, not its weights.
    # (tests/experiments/test_run.py checks that a real cheese-corner-mesa-v0 audit records False.)
    sc = get_scenario(scenario_id)
    cfg = dataclasses.replace(MESA_PRESETS["fast"], method=sc.optimizer.split("-", 1)[1])
    meta = {"scenario": scenario_id, "optimizer": sc.optimizer, "config": dataclasses.asdict(cfg), "seeds": [0], "preset": "fast"}
    (tmp_path / "systems").mkdir()
    (tmp_path / "run.json").write_text(json.dumps(meta))
    system = (sc.mesa_system or MesaOptimizer)(sc.spec)
    np.save(tmp_path / "systems" / "seed-0.npy", np.ones(len(system.feature_names), np.float32))
    _, _, _, loaded = load_systems(tmp_path)
    assert loaded[0].mesa_objective is not None and loaded[0].points_to_base is False
