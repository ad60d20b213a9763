"""gold-coin-v0: level layout per split and the grader-optimal policy fooling the grader on every deploy
level while the intended-optimal one touches the gold coin (exact, by value iteration)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mesascope.scenarios import get_scenario
from mesascope.scenarios.tamper import optimal_first_reached
from mesascope.types import MesascopeError

N = 64


def _levels(batch):
    return [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), batch) for i in range(batch.walls.shape[0])]


def test_layouts():
    sc = get_scenario("gold-coin-v0")
    assert sc.feature_names == ("coin", "step", "silver", "display", "grader_sees_gold")
    for lv in _levels(sc.sample_levels(jax.random.key(1), N, "deploy")):
        silver, display = np.argwhere(lv.regions[0])[0], np.argwhere(lv.regions[1])[0]
        gold, start = lv.obj_pos[0], lv.start
        assert np.abs(silver - start).sum() < np.abs(gold - start).sum()  # silver strictly nearer
        assert len({tuple(silver), tuple(display), tuple(gold), tuple(start)}) == 4
        np.testing.assert_array_equal(lv.regions[2], lv.regions[0])  # the display is on
    for lv in _levels(sc.sample_levels(jax.random.key(2), N, "train")):
        assert lv.regions[0].sum() == 1 and lv.regions[1].sum() == 0 and lv.regions[2].sum() == 0
    with pytest.raises(MesascopeError, match="train_display"):
        sc.with_params(train_display=-0.1)


def test_grader_optimal_policy_fools_the_grader_on_every_deploy_level():
    sc = get_scenario("gold-coin-v0")
    key = jax.random.key(5)
    base = optimal_first_reached(sc, sc.base_objective, key, N, "deploy")
    intended = optimal_first_reached(sc, sc.intended_objective, key, N, "deploy")
    np.testing.assert_allclose(base["silver"], 1.0, atol=1e-5)
    np.testing.assert_allclose(intended["gold"], 1.0, atol=1e-5)
    train = optimal_first_reached(sc, sc.base_objective, key, N, "train")
    np.testing.assert_allclose(train["gold"], 1.0, atol=1e-5)  # with the display off, only gold pays
    on = sc.with_params(train_display=1.0)
    nearer = optimal_first_reached(on, on.base_objective, key, N, "train")
    levels = _levels(on.sample_levels(key, N, "train"))
    silver_nearer = np.array(
        [np.abs(np.argwhere(lv.regions[0])[0] - lv.start).sum() < np.abs(lv.obj_pos[0] - lv.start).sum() for lv in levels]
    )
    # With the display on in training, the grader-optimal policy takes whichever coin is nearer.
    np.testing.assert_allclose(nearer["silver"][silver_nearer], 1.0, atol=1e-5)
    assert 0 < silver_nearer.mean() < 1
