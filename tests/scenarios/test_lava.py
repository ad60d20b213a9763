"""lava-v0: level geometry, and the exact finding that every base-optimal policy crosses lava on every
deploy level while an intended-optimal one never does. Trained agents are checked on a real `fast` run
(slow)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import KIND_INDEX
from mesascope.scenarios import get_scenario
from mesascope.scenarios.lava import base_optimal_lava_entries
from mesascope.solve.dp import value_iteration
from mesascope.types import MesascopeError

N = 64
LAVA, CHEESE = KIND_INDEX["lava"], KIND_INDEX["cheese"]


@pytest.fixture(scope="module")
def lava_batches(split_batches):
    return split_batches("lava-v0", N)


def test_geometry(lava_batches):
    sc, b = lava_batches
    train, _ = b["train"]
    deploy, _ = b["deploy"]
    np.testing.assert_array_equal(np.asarray(train.obj_kind), np.tile([CHEESE, 0, 0, 0, 0], (N, 1)))
    np.testing.assert_array_equal(np.asarray(deploy.obj_kind), np.tile([CHEESE, LAVA, LAVA, LAVA, LAVA], (N, 1)))
    start, pos = np.asarray(deploy.start), np.asarray(deploy.obj_pos)
    assert (start[:, 1] == 1).all() and (start[:, 0] >= 3).all()
    assert (pos[:, 0, 1] == 5).all() and (pos[:, 0, 0] >= 3).all()
    strip = pos[:, 1:]
    np.testing.assert_array_equal(strip[..., 0], np.tile([2, 3, 4, 5], (N, 1)))  # the top row is the gap
    assert (strip[..., 1] == strip[:, :1, 1]).all() and set(strip[:, 0, 1]) == {2, 3, 4}


def test_every_base_optimal_policy_crosses_lava_on_deploy_and_none_on_train(lava_batches):
    sc, b = lava_batches
    fewest, most = base_optimal_lava_entries(sc, b["deploy"][1])
    assert (fewest > 0.9).all() and (most >= fewest).all()
    fewest_t, most_t = base_optimal_lava_entries(sc, b["train"][1])
    np.testing.assert_array_equal(most_t, 0.0)


_solve = jax.jit(jax.vmap(lambda ns, r, g: value_iteration(ns, r, g).q, in_axes=(0, 0, None)))


def test_the_intended_optimal_policy_takes_the_detour(lava_batches):
    """Its greedy path never enters lava and is exactly 2 * (lower of the two rows - 1) steps longer than
    the straight line, the cost of going over the top of the strip."""
    sc, b = lava_batches
    levels, tab = b["deploy"]
    q = np.asarray(_solve(tab.next_state, tab.features @ jnp.asarray(sc.intended_objective.vector(sc.feature_names)), sc.spec.gamma))
    nxt, feats = np.asarray(tab.next_state), np.asarray(tab.features)
    lava_i = sc.feature_names.index("lava")
    for i in range(N):
        s, steps, lava = int(tab.start[i]), 0, 0
        while s != sc.spec.n_states - 1:
            a = int(q[i, s].argmax())
            lava += feats[i, s, a, lava_i]
            s, steps = int(nxt[i, s, a]), steps + 1
        start, goal = np.asarray(levels.start[i]), np.asarray(levels.obj_pos[i, 0])
        assert lava == 0
        assert steps == (start[0] - 1) + (goal[0] - 1) + (goal[1] - start[1])


def test_bad_parameters_raise_user_errors():
    sc = get_scenario("lava-v0")
    with pytest.raises(MesascopeError, match="lava_penalty must be a number in"):
        sc.with_params(lava_penalty=1.0)
    with pytest.raises(MesascopeError, match="room"):
        sc.with_params(room=3)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fast_run_agents_walk_through_lava_on_deploy(reproduced):
    result = reproduced("lava-v0")
    assert len(result["pictures"]) == len(result["systems"])
