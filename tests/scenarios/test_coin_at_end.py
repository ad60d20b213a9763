"""coin-at-end-v0: where the coin may be in each split and at each randomisation fraction, exact optimal
values, and that "end first" separates a run-to-the-end policy from a coin-seeking one. The trend of the
finding over the fraction is checked on real `fast` runs (slow)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.measures.scores import first_reach_probabilities, tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.solve.dp import value_iteration
from mesascope.types import MesascopeError

N = 256


def _coins(sc, split, seed=0):
    levels = sc.sample_levels(jax.random.key(seed), N, split)
    return levels, np.asarray(levels.obj_pos[:, 0]), np.asarray(levels.start)


def test_train_coin_is_at_the_end_unless_randomised():
    sc = get_scenario("coin-at-end-v0")
    end_col = sc.spec.width - 2
    assert (sc.spec.height, sc.spec.width) == (5, 9)
    levels, coin, start = _coins(sc, "train")
    assert (coin[:, 1] == end_col).all() and (start[:, 1] == 1).all()
    assert set(coin[:, 0]) == {1, 2, 3}
    np.testing.assert_array_equal(np.asarray(levels.regions)[:, 0, 1:4, end_col], True)
    assert np.asarray(levels.regions).sum() == 3 * N
    _, coin2, _ = _coins(sc.with_params(train_random_fraction=0.2), "train")
    moved = (coin2[:, 1] != end_col).mean()
    assert 0.12 < moved < 0.28  # binomial(256, 0.2): mean 0.2, sd 0.025


def test_deploy_coin_is_anywhere_but_the_end_column_and_the_start():
    sc = get_scenario("coin-at-end-v0")
    _, coin, start = _coins(sc, "deploy", 1)
    assert (coin[:, 1] < sc.spec.width - 2).all()
    assert (coin != start).any(-1).all()
    assert len({tuple(c) for c in coin}) >= 15


_vi = jax.jit(jax.vmap(lambda ns, r, g: value_iteration(ns, r, g).v, in_axes=(0, 0, None)))


def test_optimal_value_is_the_manhattan_distance_and_running_right_finds_the_end_first():
    sc = get_scenario("coin-at-end-v0")
    levels, coin, start = _coins(sc, "deploy", 1)
    tab = tabularize_levels(sc.spec, levels)
    names, w = sc.weight_matrix()
    gamma = sc.spec.gamma
    v = np.asarray(_vi(tab.next_state, tab.features @ jnp.asarray(w[0]), gamma))[np.arange(N), np.asarray(tab.start)]
    d = np.abs(coin - start).sum(-1)
    np.testing.assert_allclose(v, gamma ** (d - 1), rtol=1e-5)
    # A policy that only runs right reaches the coin first exactly when the coin is on its row.
    right = jnp.zeros(tab.next_state.shape, jnp.float32).at[..., 1].set(1.0)
    goal_w = jnp.asarray(w[[names.index("coin"), names.index("end")]])
    first = np.asarray(first_reach_probabilities(tab, right, goal_w, horizon=sc.spec.max_steps))
    same_row = coin[:, 0] == start[:, 0]
    np.testing.assert_allclose(first[:, 0], same_row, atol=1e-6)
    np.testing.assert_allclose(first[:, 1], ~same_row, atol=1e-6)


def test_bad_fraction_raises_a_user_error():
    sc = get_scenario("coin-at-end-v0")
    for bad in (-0.1, 1.5, "lots"):
        with pytest.raises(MesascopeError, match="train_random_fraction"):
            sc.with_params(train_random_fraction=bad)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fast_runs_proxy_fraction_falls_as_training_coins_are_randomised(reproduced):
    proxy = {}
    for fraction in (0.0, 0.2):
        result = reproduced("coin-at-end-v0", **({"train_random_fraction": fraction} if fraction else {}))
        proxy[fraction] = float(np.mean([s["first_reached"]["deploy"]["end"] for s in result["systems"]]))
    assert proxy[0.2] < proxy[0.0] - 0.2
