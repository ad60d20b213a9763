"""Explicit mesa-optimizers and bridges (SPEC.md section 1, seed 002)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.measures.scores import score_levels, tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.systems.bridge import Bridge, TypeMismatchError
from mesascope.systems.mesa import (
    MESA_DOMAIN,
    TRANSITION_DOMAIN,
    MesaOptimizer,
    MesaParams,
    mesa_features,
    train_evolution,
    train_gradient,
)


@pytest.fixture(scope="module")
def setup():
    sc = get_scenario("cheese-corner-v0")
    levels = sc.sample_levels(jax.random.key(0), 32, "train")
    tabs = tabularize_levels(sc.spec, levels)
    names, weights = sc.weight_matrix()
    return sc, levels, tabs, jnp.asarray(weights[names.index("base")])


def _level0(levels, tabs):
    return jax.tree_util.tree_map(lambda x: x[0], levels), jax.tree_util.tree_map(lambda x: x[0], tabs)


def test_features_name_the_cell_entered(setup):
    sc, levels, tabs, _ = setup
    level, tab = _level0(levels, tabs)
    psi = np.asarray(mesa_features(sc.spec, level))
    names = MesaOptimizer(sc.spec).feature_names
    assert psi.shape == (sc.spec.n_states, 4, len(names))
    # Entering the cheese cell (the only transitions the base objective rewards) lights "cheese".
    entered_cheese = np.asarray(tab.features[..., sc.feature_names.index("cheese")]) > 0
    np.testing.assert_array_equal(psi[..., names.index("cheese")] > 0, entered_cheese)
    # Out of the absorbing terminal state the planner perceives nothing.
    assert not psi[-1].any()
    assert 0.0 <= psi[..., names.index("up")].min() and psi[..., names.index("right")].max() <= 1.0


def test_comparing_without_a_bridge_is_a_type_error(setup):
    sc, levels, tabs, _ = setup
    level, tab = _level0(levels, tabs)
    system = MesaOptimizer(sc.spec)
    params = system.init(jax.random.key(0))
    with pytest.raises(TypeMismatchError) as err:
        system.bridged_reward(params, level, tab, None)
    assert MESA_DOMAIN in str(err.value) and TRANSITION_DOMAIN in str(err.value) and "bridge" in str(err.value)
    wrong = Bridge("wrong", "tokens", TRANSITION_DOMAIN, to_reward=lambda *a: None)
    with pytest.raises(TypeMismatchError, match="tokens"):
        system.bridged_reward(params, level, tab, wrong)
    bridged = system.bridged_reward(params, level, tab, system.default_bridge())
    # The transition form: on every realised transition it pays what the planner is paid.
    np.testing.assert_allclose(bridged.realised(tab.next_state), system.mesa_reward(params, level), atol=1e-6)


def test_action_probs_are_distributions(setup):
    sc, levels, tabs, _ = setup
    level, tab = _level0(levels, tabs)
    system = MesaOptimizer(sc.spec)
    probs = np.asarray(system.action_probs(system.init(jax.random.key(1)), level, tab))
    assert np.isfinite(probs).all() and np.allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_a_cheese_only_objective_plans_shortest_paths(setup):
    sc, levels, tabs, w_base = setup
    system = MesaOptimizer(sc.spec, beta=50.0)
    names = system.feature_names
    theta = jnp.zeros(len(names)).at[names.index("cheese")].set(1.0)
    probs = jax.vmap(lambda l, t: system.action_probs(MesaParams(theta), l, t))(levels, tabs)
    j = score_levels(tabs, probs, w_base[None], sc.spec.gamma).j
    assert float(j.min()) > 0.95


@pytest.mark.parametrize("trainer", [train_gradient, train_evolution])
def test_base_optimizers_improve_the_base_value_and_the_objective_is_readable(setup, trainer):
    sc, levels, tabs, w_base = setup
    system = MesaOptimizer(sc.spec)
    kwargs = {"steps": 60} if trainer is train_gradient else {"generations": 12}
    result = trainer(system, levels, tabs, w_base, key=jax.random.key(2), **kwargs)
    assert result.curve[-1] > result.curve[0] + 0.1
    objective = system.mesa_objective(result.params)
    assert set(objective) == set(system.feature_names)
    assert max(objective, key=lambda k: abs(objective[k])) == "cheese"


def test_same_key_same_mesa_objective(setup):
    sc, levels, tabs, w_base = setup
    system = MesaOptimizer(sc.spec)
    a = train_gradient(system, levels, tabs, w_base, key=jax.random.key(5), steps=5)
    b = train_gradient(system, levels, tabs, w_base, key=jax.random.key(5), steps=5)
    np.testing.assert_array_equal(np.asarray(a.params.theta), np.asarray(b.params.theta))
