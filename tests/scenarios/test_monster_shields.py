"""monster-shields-v0: the engine's apple/shield/monster kinds on a hand-traced corridor, level contents
per split, and exact shield-pickup measures of base-optimal and uniform policies. The finding on trained
agents is checked on a real `fast` run (slow)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import KIND_INDEX, GridSpec, Level, reset, step
from mesascope.scenarios import get_scenario
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios.monster_shields import (
    base_optimal_shield_pickups,
    leftover_states,
    leftover_steps,
    shield_pickup_probability,
)
from mesascope.solve.dp import uniform_policy
from mesascope.types import MesascopeError

N = 64
APPLE, SHIELD, MONSTER = KIND_INDEX["apple"], KIND_INDEX["shield"], KIND_INDEX["monster"]
RIGHT, LEFT = 1, 3


@pytest.fixture(scope="module")
def ms(split_batches):
    return split_batches("monster-shields-v0", N)


def _corridor(kinds):
    """A 1x5 corridor: start at column 1, objects at columns 2, 3, 4."""
    walls = jnp.ones((3, 7), bool).at[1, 1:6].set(False)
    pos = jnp.array([[1, 2], [1, 3], [1, 4]], jnp.int32)
    return Level(walls, jnp.array(kinds, jnp.int32), pos, jnp.array([1, 1], jnp.int32), jnp.zeros((0, 3, 7), bool))


def test_apples_shields_and_monsters_in_the_engine():
    """Walking right through apple, shield, monster: the apple pays without ending the episode, the
    shield fills the inventory, the monster harms (1 per step) until entered with the shield, which kills it
    and uses the shield up. Entered without a shield, a monster stays alive and keeps harming."""
    spec = GridSpec(3, 7, 3, n_tracked=3, max_inventory=1, kinds=("apple", "shield", "monster"), view="full")
    level = _corridor([APPLE, SHIELD, MONSTER])
    s = reset(level)
    trace = []
    for _ in range(4):
        s, phi = step(spec, level, s, jnp.int32(RIGHT))
        trace.append((np.asarray(phi).tolist(), int(s.inventory), np.asarray(s.consumed).tolist(), bool(s.done)))
    # features: apple, shield, monster (live monsters after the step), step
    assert trace[0] == ([1, 0, 1, 1], 0, [True, False, False], False)
    assert trace[1] == ([0, 1, 1, 1], 1, [True, True, False], False)
    assert trace[2] == ([0, 0, 0, 1], 0, [True, True, True], False)
    assert trace[3] == ([0, 0, 0, 1], 0, [True, True, True], False)
    # No shield: the monster is entered (at column 2) and survives; its harm continues.
    level = _corridor([MONSTER, APPLE, APPLE])
    s, phi = step(spec, level, reset(level), jnp.int32(RIGHT))
    assert np.asarray(phi).tolist() == [0, 0, 1, 1] and not bool(s.consumed[0])
    s, phi = step(spec, level, s, jnp.int32(LEFT))
    assert np.asarray(phi).tolist() == [0, 0, 1, 1]


def test_levels_per_split(ms):
    sc, b = ms
    assert sc.spec.n_states == 25 * 16 + 1
    np.testing.assert_array_equal(np.asarray(b["train"][0].obj_kind), np.tile([SHIELD, MONSTER, APPLE], (N, 1)))
    np.testing.assert_array_equal(np.asarray(b["deploy"][0].obj_kind), np.tile([SHIELD, APPLE, APPLE], (N, 1)))
    for levels, _ in b.values():
        cells = np.concatenate([np.asarray(levels.start)[:, None], np.asarray(levels.obj_pos)], 1)
        assert all(len({tuple(c) for c in row}) == 4 for row in cells)
    some = sc.with_params(deploy_monster_fraction=0.5).sample_levels(jax.random.key(2), 256, "deploy")
    frac = float((np.asarray(some.obj_kind)[:, 1] == MONSTER).mean())
    assert 0.4 < frac < 0.6


def test_shields_pay_on_train_and_are_a_detour_on_deploy(ms):
    """Exact: base-optimal policies must fetch the shield on most train levels; on deploy some
    base-optimal policy avoids it while apples remain on almost every level, while the uniform policy
    picks it up with probability well above zero."""
    sc, b = ms
    lo_t, hi_t = base_optimal_shield_pickups(sc, *b["train"])
    assert (lo_t > 0.5).mean() > 0.5  # the monster is killed before the apple on most train levels
    lv, tab = b["deploy"]
    lo, hi = base_optimal_shield_pickups(sc, lv, tab)
    assert (lo <= hi + 1e-6).all() and (hi <= 1.0 + 1e-6).all()
    assert (lo < 1e-6).mean() > 0.9
    unif = shield_pickup_probability(sc, lv, tab, jax.vmap(uniform_policy)(tab.next_state))
    assert 0.3 < unif.mean() < 0.95
    # A longer horizon can only add pickups.
    short = shield_pickup_probability(sc, lv, tab, jax.vmap(uniform_policy)(tab.next_state), horizon=10)
    assert (short <= unif + 1e-6).all() and short.mean() < unif.mean()


def test_leftover_pairs_per_split(ms):
    """`--param leftovers=k` adds k (shield, apple) pairs on distinct squares to both splits and leaves the
    first three objects, the start and every level without leftovers where they were."""
    sc, b = ms
    sc1 = sc.with_params(leftovers=1)
    assert sc1.spec.n_objects == 5 and sc1.spec.n_states == 25 * 2**5 * 2 + 1
    # The coverage measure only where a shield can outlast the monster.
    assert "leftover_steps" in {m.name for m in sc1.measures} and "leftover_steps" not in {m.name for m in sc.measures}
    for split, seed in (("train", 0), ("deploy", 1)):
        old = b[split][0]
        new = sc1.sample_levels(jax.random.key(seed), N, split)
        np.testing.assert_array_equal(np.asarray(new.obj_kind)[:, 3:], np.tile([SHIELD, APPLE], (N, 1)))
        np.testing.assert_array_equal(np.asarray(new.obj_kind)[:, :3], np.asarray(old.obj_kind))
        np.testing.assert_array_equal(np.asarray(new.obj_pos)[:, :3], np.asarray(old.obj_pos))
        np.testing.assert_array_equal(np.asarray(new.start), np.asarray(old.start))
        cells = np.concatenate([np.asarray(new.start)[:, None], np.asarray(new.obj_pos)], 1)
        assert all(len({tuple(c) for c in row}) == 6 for row in cells)
    assert sc.with_params(leftovers=2, room=3).spec.n_objects == 7


def _corridor5(kinds):
    """A 1x6 corridor: start at column 1, objects at columns 2..6."""
    walls = jnp.ones((3, 8), bool).at[1, 1:7].set(False)
    pos = jnp.array([[1, c] for c in range(2, 7)], jnp.int32)
    return Level(walls, jnp.array(kinds, jnp.int32), pos, jnp.array([1, 1], jnp.int32), jnp.zeros((0, 3, 8), bool))


def test_leftover_steps_on_a_traced_corridor():
    """Walking right through shield, monster, apple, shield, apple: the states after the monster's death
    and before the second shield is taken are the leftover states; always-right acts in two of them (on the
    monster's square and on the first apple's), and the horizon cuts the count."""
    sc = get_scenario("monster-shields-v0").with_params(leftovers=1, max_steps=9)
    spec = dataclasses.replace(sc.spec, height=3, width=8)
    level = jax.tree_util.tree_map(lambda x: x[None], _corridor5([SHIELD, MONSTER, APPLE, SHIELD, APPLE]))
    tab = tabularize_levels(spec, level)
    probs = jnp.zeros(tab.next_state.shape, jnp.float32).at[..., RIGHT].set(1.0)
    scen = dataclasses.replace(sc, spec=spec)
    # Steps: 0 start, 1 on shield, 2 kill monster (now no monster, shield and apples left), 3 eat apple
    # (still leftover), 4 take the shield (apple left, no shield: not leftover).
    assert leftover_steps(scen, level, tab, probs).tolist() == [2.0]
    assert leftover_steps(scen, level, tab, probs, horizon=3).tolist() == [1.0]
    assert leftover_steps(scen, level, tab, probs, horizon=2).tolist() == [0.0]
    mask = np.asarray(leftover_states(spec, level))[0]
    assert not mask[-1] and mask.sum() > 0


def test_leftover_steps_against_matrix_powers(ms):
    """The exact expected visits equal sum_t e_s0 P_pi^t . mask, computed with dense float64 matrices."""
    sc, _ = ms
    sc1 = sc.with_params(leftovers=1)
    levels = sc1.sample_levels(jax.random.key(5), 3, "train")
    tab = tabularize_levels(sc1.spec, levels)
    probs = jax.random.dirichlet(jax.random.key(6), jnp.ones(4), tab.next_state.shape[:2])
    got = leftover_steps(sc1, levels, tab, probs, horizon=15)
    mask = np.asarray(leftover_states(sc1.spec, levels), np.float64)
    for i in range(3):
        ns, pi = np.asarray(tab.next_state[i]), np.asarray(probs[i], np.float64)
        P = np.zeros((ns.shape[0], ns.shape[0]))
        np.add.at(P, (np.repeat(np.arange(ns.shape[0]), 4), ns.reshape(-1)), pi.reshape(-1))
        d = np.zeros(ns.shape[0])
        d[int(tab.start[i])] = 1.0
        want = 0.0
        for _ in range(15):
            want += d @ mask[i]
            d = d @ P
        assert abs(got[i] - want) < 1e-4
    assert got.max() > 0


def test_bad_parameters_raise_user_errors():
    sc = get_scenario("monster-shields-v0")
    for bad, match in (({"room": 9}, "room"), ({"max_steps": 3}, "max_steps"), ({"deploy_steps": 5}, "deploy_steps"),
                       ({"harm": 0.0}, "harm"), ({"deploy_monster_fraction": 2.0}, "fraction"),
                       ({"leftovers": 3}, "leftovers"), ({"gamma": 1.0}, "gamma")):
        with pytest.raises(MesascopeError, match=match):
            sc.with_params(**bad)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fast_run_agents_keep_collecting_shields_on_deploy(reproduced):
    """Trained agents pick up the useless shield on deploy while apples remain far more often than the
    least shield-seeking base-optimal policy and than the uniform policy (`mesascope reproduce`)."""
    result = reproduced("monster-shields-v0")
    assert result["scenario_measures"]["base_optimal_can_skip_shield"]["value"]["deploy"] > 0.9
