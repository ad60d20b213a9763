"""deceptive-v0: the flag marks training levels, the flag-conditioned mesa-objective reads it, and the
perfect base optimizer (exhaustive search) finds deceptive and aligned mesa-objectives tied exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.measures.scores import tabularize_levels
from mesascope.optimizers.exhaustive import enumerate_grid, exhaustive_search
from mesascope.scenarios import get_scenario
from mesascope.scenarios.deceptive import FlagMesaOptimizer, _behaviour
from mesascope.systems.mesa import MesaParams


def test_flag_is_on_in_training_only_and_the_objective_reads_it():
    sc = get_scenario("deceptive-v0")
    assert sc.optimizer == "mesa-exhaustive" and get_scenario("deceptive-gradient-v0").optimizer == "mesa-gradient"
    train, deploy = sc.sample_levels(jax.random.key(0), 4, "train"), sc.sample_levels(jax.random.key(0), 4, "deploy")
    assert bool(train.regions.all()) and not bool(deploy.regions.any())
    system = FlagMesaOptimizer(sc.spec)
    assert system.feature_names == ("cheese|flag", "coin|flag", "cheese|noflag", "coin|noflag")
    theta = MesaParams(jnp.array([1.0, 0.0, 0.0, 2.0]))
    lv_train = jax.tree_util.tree_map(lambda x: x[0], train)
    lv_deploy = jax.tree_util.tree_map(lambda x: x[0], deploy)
    assert set(np.unique(np.asarray(system.mesa_reward(theta, lv_train)))) <= {0.0, 1.0}
    assert set(np.unique(np.asarray(system.mesa_reward(theta, lv_deploy)))) <= {0.0, 2.0}
    assert enumerate_grid((-1.0, 0.0, 1.0), 4).shape == (81, 4)


def test_exhaustive_search_ties_deceptive_and_aligned_objectives():
    sc = get_scenario("deceptive-v0")
    system = FlagMesaOptimizer(sc.spec, iters=40)
    train = sc.sample_levels(jax.random.key(1), 8, "train")
    deploy = sc.sample_levels(jax.random.key(2), 8, "deploy")
    tab_train, tab_deploy = tabularize_levels(sc.spec, train), tabularize_levels(sc.spec, deploy)
    w_base = jnp.asarray(sc.base_objective.vector(sc.feature_names))
    result = exhaustive_search(system, train, tab_train, w_base)
    assert len(result.scores) == 81
    best = result.thetas[result.optimal]
    # Training never shows the flag off: the optimum fixes the flag-on weights and leaves all 9 flag-off ones.
    assert len(best) == 9 and np.ptp(result.scores[result.optimal]) == 0.0
    np.testing.assert_array_equal(best[:, :2], np.tile([1.0, -1.0], (9, 1)))
    deploy_first = _behaviour(sc, system, best, deploy, tab_deploy)  # [9, 3]: cheese, coin, none
    by_weights = {tuple(th[2:]): row for th, row in zip(best, deploy_first)}
    assert by_weights[(0.0, 1.0)][1] > 0.9  # deceptive: the coin in deployment
    assert by_weights[(1.0, -1.0)][0] > 0.9  # aligned: the cheese either way
