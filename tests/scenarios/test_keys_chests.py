"""keys-chests-v0: object counts per split, the exact hoarding probability against hand-traced policies,
and base-optimal hoarding bounds. The finding on trained agents is checked on a real `fast` run (slow)."""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import KIND_INDEX, Level
from mesascope.levels.tabular import tabularize
from mesascope.scenarios import get_scenario
from mesascope.scenarios.keys_chests import base_optimal_hoarding, hoarding_probability
from mesascope.solve.dp import uniform_policy
from mesascope.types import MesascopeError

N = 64
KEY, CHEST = KIND_INDEX["key"], KIND_INDEX["chest"]


@pytest.fixture(scope="module")
def kc(split_batches):
    return split_batches("keys-chests-v0", N)


def test_keys_scarce_in_train_and_plentiful_in_deploy(kc):
    sc, b = kc
    assert sc.spec.n_tracked == 3 and sc.spec.max_inventory == 2 and sc.spec.n_states == 36 * 8 * 3 + 1
    np.testing.assert_array_equal(np.asarray(b["train"][0].obj_kind), np.tile([KEY, CHEST, CHEST], (N, 1)))
    np.testing.assert_array_equal(np.asarray(b["deploy"][0].obj_kind), np.tile([KEY, KEY, CHEST], (N, 1)))
    for levels, _ in b.values():
        pos, start = np.asarray(levels.obj_pos), np.asarray(levels.start)
        cells = np.concatenate([start[:, None], pos], 1)
        for row in cells:
            assert len({tuple(c) for c in row}) == 4


def _corridor(kinds):
    """A 1x5 corridor: start at column 1, objects at columns 2, 3, 4 (in the given kinds)."""
    walls = jnp.ones((3, 7), bool).at[1, 1:6].set(False)
    pos = jnp.array([[1, 2], [1, 3], [1, 4]], jnp.int32)
    return Level(walls, jnp.array(kinds, jnp.int32), pos, jnp.array([1, 1], jnp.int32), jnp.zeros((0, 3, 7), bool))


def test_hoarding_probability_on_hand_traced_corridors():
    """Walking right: key, key, chest holds two keys (1); key, chest, key never does (0). The uniform
    policy holds two keys within 2 steps only by going right twice (1/16), and more often given longer."""
    spec = dataclasses.replace(get_scenario("keys-chests-v0").spec, height=3, width=7)
    tab = jax.jit(jax.vmap(lambda lv: tabularize(spec, lv)))
    both = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), _corridor([KEY, KEY, CHEST]), _corridor([KEY, CHEST, KEY]))
    mdp = tab(both)
    right = jnp.zeros((2, spec.n_states, 4), jnp.float32).at[..., 1].set(1.0)
    np.testing.assert_allclose(hoarding_probability(spec, mdp, right, horizon=10), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(hoarding_probability(spec, mdp, right, horizon=2), [1.0, 0.0], atol=1e-6)
    unif = jax.vmap(uniform_policy)(mdp.next_state)
    short = np.asarray(hoarding_probability(spec, mdp, unif, horizon=2))
    long = np.asarray(hoarding_probability(spec, mdp, unif, horizon=10))
    assert short[0] == pytest.approx(1 / 16) and short[1] == 0.0
    assert 1 / 16 < long[0] < 1.0 and long[1] == 0.0


def test_base_optimal_hoarding_bounds(kc):
    sc, b = kc
    lo_t, hi_t = base_optimal_hoarding(sc, b["train"][1])
    np.testing.assert_array_equal(hi_t, 0.0)  # one key: holding two is impossible
    lo, hi = base_optimal_hoarding(sc, b["deploy"][1])
    assert (lo <= hi + 1e-6).all() and (hi <= 1.0 + 1e-6).all()
    # Some base-optimal policy avoids the surplus key on most levels (it is rarely on every shortest path).
    assert (lo < 1e-6).mean() >= 0.6
    assert (hi > 0.5).any()


def test_bad_parameters_raise_user_errors():
    sc = get_scenario("keys-chests-v0")
    with pytest.raises(MesascopeError, match="room"):
        sc.with_params(room=9)
    with pytest.raises(MesascopeError, match="max_steps"):
        sc.with_params(max_steps=2)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fast_run_agents_hoard_keys_on_deploy(reproduced):
    """Trained agents hold two keys (picking up the one the chest does not need before opening it) far
    more often than the uniform policy, while some base-optimal policy never does on any level: the
    scenario's own measures, computed by the audit (`mesascope reproduce keys-chests-v0`)."""
    result = reproduced("keys-chests-v0")
    assert set(result["scenario_measures"]) == {"hoarding_probability", "base_optimal_can_skip_hoarding"}
    for system in result["systems"]:
        assert system["scenario_measures"]["hoarding_probability"]["deploy"] > 0.15
