"""The tabular view agrees with the simulator: `encode`/`decode` are inverse on every visited state, and
the enumerated `next_state`/`features` are what `step` does, along random rollouts of cheese-corner
levels and of a keys-and-chests level with tracked objects and an inventory."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import reset, step
from mesascope.levels.tabular import decode, encode, observe_all


@partial(jax.jit, static_argnums=(0, 5))
def _transition(spec, levels, mdps, states, actions, shared):
    """One simulator step of a `[B]` batch of states (levels and tables per row, or `shared` by all),
    with everything the checks need recorded."""

    def one(level, mdp, s, a):
        idx = encode(spec, s)
        d = decode(spec, idx)
        nxt, phi = step(spec, level, s, a)
        rec = {
            "pos": s.pos, "consumed": s.consumed, "inv": s.inventory, "done": s.done, "idx": idx,
            "d_pos": d.pos, "d_consumed": d.consumed, "d_inv": d.inventory, "d_done": d.done,
            "tab_next": mdp.next_state[idx, a], "next_idx": encode(spec, nxt),
            "tab_phi": mdp.features[idx, a], "phi": phi,
        }
        return nxt, rec

    axis = None if shared else 0
    return jax.vmap(one, in_axes=(axis, axis, 0, 0))(levels, mdps, states, actions)


def _rollouts(spec, levels, mdps, n, horizon, seed, shared=False):
    """Uniform-random rollouts from the start of `n` rows; records stacked to `[horizon, n, ...]`."""
    rng = np.random.default_rng(seed)
    states = jax.vmap(reset)(levels) if not shared else jax.vmap(lambda _: reset(levels))(jnp.arange(n))
    records = []
    for _ in range(horizon):
        states, rec = _transition(spec, levels, mdps, states, jnp.asarray(rng.integers(0, 4, n), jnp.int32), shared)
        records.append(rec)
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}


def _check_rollouts(spec, out):
    live = ~out["done"]
    assert live.any() and (~live).any(), "rollouts should visit both live and terminal states"
    # decode(encode(s)) == s on every live state
    np.testing.assert_array_equal(out["d_pos"][live], out["pos"][live])
    np.testing.assert_array_equal(out["d_inv"][live], out["inv"][live])
    np.testing.assert_array_equal(out["d_done"], out["done"])
    # every tracked consumed bit survives; untracked objects are never consumed in a live state
    np.testing.assert_array_equal(out["d_consumed"][live], out["consumed"][live])
    # every terminal state is the one absorbing index
    assert (out["idx"][~live] == spec.n_states - 1).all() and (out["idx"][live] < spec.n_states - 1).all()
    # the tables are the simulator
    np.testing.assert_array_equal(out["tab_next"], out["next_idx"])
    np.testing.assert_array_equal(out["tab_phi"], out["phi"])
    return out


def _layout_index(spec, pos, consumed, inv):
    """The documented index layout, written out independently of `encode`."""
    bits = sum(int(b) << i for i, b in enumerate(consumed[: spec.n_tracked]))
    return ((pos[0] * spec.width + pos[1]) * 2**spec.n_tracked + bits) * (spec.max_inventory + 1) + inv


@pytest.fixture(scope="module")
def cheese_levels(cheese_corner_batches):
    """8 train and 8 deploy levels of cheese-corner-v0 with their tabular views."""
    b = cheese_corner_batches

    def first(split, tree):
        return jax.tree_util.tree_map(lambda x: x[:8], tree)

    def cat(*trees):
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *trees)

    levels = cat(first("train", b["train"]), first("deploy", b["deploy"]))
    mdps = cat(first("train", b["train_mdp"]), first("deploy", b["deploy_mdp"]))
    return b["spec"], levels, mdps


N_PER_LEVEL = 16


def test_cheese_corner_rollouts_match_tables(cheese_levels):
    spec, levels, mdps = cheese_levels
    n_levels = levels.walls.shape[0]
    # Row i of the batch runs on level i // N_PER_LEVEL.
    levels, mdps = (jax.tree_util.tree_map(lambda x: jnp.repeat(x, N_PER_LEVEL, axis=0), t) for t in (levels, mdps))
    out = _check_rollouts(spec, _rollouts(spec, levels, mdps, n_levels * N_PER_LEVEL, 60, seed=0))
    # Some rollouts find the cheese, and the walks cover more than the start of every maze.
    assert out["phi"][..., 0].sum() > 0
    for i in range(n_levels):
        visited = np.unique(out["idx"][:, i * N_PER_LEVEL : (i + 1) * N_PER_LEVEL])
        assert len(visited) >= 3
    # Every visited index is the documented layout.
    live = ~out["done"]
    for pos, inv, idx in zip(out["pos"][live][:500], out["inv"][live][:500], out["idx"][live][:500], strict=True):
        assert idx == _layout_index(spec, pos, [], inv)


def test_keys_and_chests_rollouts_match_tables(keys_chests_level, tabular_np):
    spec, level, cells = keys_chests_level
    assert spec.n_tracked == 4 and spec.max_inventory == 2
    mdp = jax.tree_util.tree_map(jnp.asarray, tabular_np(spec, level))
    out = _check_rollouts(spec, _rollouts(spec, level, mdp, 256, 200, seed=1, shared=True))
    live = ~out["done"]
    # The rollouts exercise the parts of the state that matter here.
    assert out["inv"][live].max() == 2, "no rollout held two keys"
    chests = [i for i, k in enumerate(np.asarray(level.obj_kind)) if k == 4]
    assert out["consumed"][live][:, chests].any(), "no rollout opened a chest"
    assert out["phi"][..., spec.kinds.index("lava")].sum() > 0
    n_distinct = len(np.unique(out["idx"]))
    assert n_distinct > 100
    for pos, cons, inv, idx in zip(out["pos"][live][::50], out["consumed"][live][::50], out["inv"][live][::50],
                                   out["idx"][live][::50], strict=True):
        assert idx == _layout_index(spec, pos, cons, inv)


def test_encode_decode_bijection_on_every_index(keys_chests_level, cheese_levels):
    for spec in (keys_chests_level[0], cheese_levels[0]):  # noqa: B007
        idx = jnp.arange(spec.n_states, dtype=jnp.int32)
        round_trip = jax.jit(jax.vmap(lambda i: encode(spec, decode(spec, i))))(idx)
        np.testing.assert_array_equal(np.asarray(round_trip), np.arange(spec.n_states))
        done = np.asarray(jax.vmap(lambda i: decode(spec, i).done)(idx))
        assert done.tolist() == [False] * (spec.n_states - 1) + [True]


def test_tabular_start_and_terminal(keys_chests_level, tabular_np):
    spec, level, _ = keys_chests_level
    mdp = tabular_np(spec, level)
    assert mdp.start == int(encode(spec, reset(level))) == _layout_index(spec, (0, 0), [], 0)
    assert mdp.terminal.tolist() == [False] * (spec.n_states - 1) + [True]
    assert (mdp.next_state[-1] == spec.n_states - 1).all()
    assert (mdp.features[-1] == 0).all()
    assert mdp.next_state.shape == (spec.n_states, 4)
    assert mdp.features.shape == (spec.n_states, 4, len(spec.kinds) + 1 + len(spec.regions))


def test_observe_all_matches_the_index_layout(keys_chests_level):
    spec, level, _ = keys_chests_level
    obs = np.asarray(jax.jit(partial(observe_all, spec))(level))
    assert obs.shape == (spec.n_states, *spec.obs_shape)
    assert (obs[-1] == 0).all()  # terminal
    kinds = np.asarray(level.obj_kind)
    positions = np.asarray(level.obj_pos)
    channel = {k: 2 + spec.kinds.index(k) for k in spec.kinds}
    rng = np.random.default_rng(0)
    for i in rng.choice(spec.n_states - 1, size=200, replace=False):
        inv = i % (spec.max_inventory + 1)
        bits = (i // (spec.max_inventory + 1)) % 2**spec.n_tracked
        cell = i // ((spec.max_inventory + 1) * 2**spec.n_tracked)
        r, c = divmod(cell, spec.width)
        o = obs[i]
        assert o[..., 1].sum() == 1 and o[r, c, 1] == 1
        np.testing.assert_allclose(o[..., -1], inv / spec.max_inventory)
        for slot in range(spec.n_tracked):
            kind = {3: "key", 4: "chest"}[int(kinds[slot])]
            consumed = (bits >> slot) & 1
            assert o[positions[slot][0], positions[slot][1], channel[kind]] == 1 - consumed
        np.testing.assert_array_equal(o[..., 0], np.asarray(level.walls, float))
