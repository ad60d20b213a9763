"""Semantics of the gridworld engine (`reset`, `step`, `observe`), transition by transition, on one
hand-drawn level that holds every kind of object."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import ACTIONS, GridSpec, Level, State, feature_names, observe, reset, step

UP, RIGHT, DOWN, LEFT = range(4)

#   col 01234
ROWS = (
    "S.K.#",
    ".#H..",
    "K...L",
    ".O.C.",
    ".R...",
)
ZONE = (
    "...x.",
    "...x.",
    ".....",
    ".....",
    ".....",
)
KINDS = ("lava", "cheese", "key", "chest", "coin", "door_red")  # deliberately not OBJECT_KINDS order
NAMES = KINDS + ("step", "zone")

_step = jax.jit(step, static_argnums=0)
_observe = jax.jit(observe, static_argnums=0)


@pytest.fixture(scope="module")
def world(draw_level):
    # One empty slot (kind "none") sits at (0, 0), the start square: it must never do anything.
    spec, level, cells = draw_level(ROWS, regions={"zone": ZONE}, kinds=KINDS, max_inventory=1, empty_slots=1)
    return spec, level, cells


def _slot(level, rc):
    hits = np.flatnonzero((np.asarray(level.obj_pos) == rc).all(1) & (np.asarray(level.obj_kind) > 0))
    assert len(hits) == 1
    return int(hits[0])


def _state(spec, pos, consumed=(), inventory=0, done=False):
    c = np.zeros(spec.n_objects, bool)
    c[list(consumed)] = True
    return State(
        pos=jnp.asarray(pos, jnp.int32),
        consumed=jnp.asarray(c),
        inventory=jnp.asarray(inventory, jnp.int32),
        done=jnp.asarray(done),
    )


def _go(spec, level, state, action):
    nxt, phi = _step(spec, level, state, jnp.int32(action))
    return nxt, dict(zip(NAMES, np.asarray(phi).tolist(), strict=True))


def _only(phi, **on):
    """phi has exactly the named features set (step defaults to 1)."""
    want = {n: 0.0 for n in NAMES}
    want["step"] = 1.0
    want.update({k: float(v) for k, v in on.items()})
    return phi == want


def test_feature_names_and_reset(world):
    spec, level, _ = world
    assert feature_names(spec) == NAMES
    s0 = reset(level)
    assert s0.pos.tolist() == [0, 0]
    assert s0.consumed.shape == (spec.n_objects,) and not s0.consumed.any()
    assert int(s0.inventory) == 0 and not bool(s0.done)
    assert ACTIONS == ("up", "right", "down", "left")


@pytest.mark.parametrize(
    ("pos", "action"),
    [((0, 0), UP), ((0, 0), LEFT), ((4, 4), DOWN), ((4, 4), RIGHT), ((0, 3), RIGHT), ((1, 0), RIGHT), ((0, 1), DOWN)],
    ids=["oob-up", "oob-left", "oob-down", "oob-right", "wall-right", "wall-right2", "wall-down"],
)
def test_blocked_moves_leave_the_agent_in_place(world, pos, action):
    spec, level, _ = world
    nxt, phi = _go(spec, level, _state(spec, pos), action)
    assert nxt.pos.tolist() == list(pos)
    assert not bool(nxt.done) and int(nxt.inventory) == 0 and not nxt.consumed.any()
    zone = 1.0 if pos == (0, 3) else 0.0
    assert _only(phi, zone=zone)


def test_free_moves(world):
    spec, level, _ = world
    for pos, action, to in [((0, 0), RIGHT, (0, 1)), ((0, 0), DOWN, (1, 0)), ((4, 4), UP, (3, 4)), ((4, 4), LEFT, (4, 3))]:
        nxt, phi = _go(spec, level, _state(spec, pos), action)
        assert nxt.pos.tolist() == list(to)
        assert _only(phi)


def test_empty_slot_on_the_start_square_is_inert(world):
    spec, level, _ = world
    nxt, phi = _go(spec, level, _state(spec, (0, 1)), LEFT)
    assert nxt.pos.tolist() == [0, 0] and not nxt.consumed.any() and _only(phi)
    nxt, phi = _go(spec, level, _state(spec, (0, 0)), UP)  # bumping while standing on it
    assert not nxt.consumed.any() and _only(phi)


def test_key_is_picked_up_once_and_inventory_is_capped(world):
    spec, level, _ = world
    k1, k2 = _slot(level, (0, 2)), _slot(level, (2, 0))
    nxt, phi = _go(spec, level, _state(spec, (0, 1)), RIGHT)
    assert nxt.pos.tolist() == [0, 2] and int(nxt.inventory) == 1 and not bool(nxt.done)
    assert nxt.consumed.tolist() == [i == k1 for i in range(spec.n_objects)]
    assert _only(phi, key=1)
    # Leave and come back: the key is gone.
    away, _ = _go(spec, level, nxt, LEFT)
    back, phi = _go(spec, level, away, RIGHT)
    assert int(back.inventory) == 1 and _only(phi)
    # A second key with a full inventory (max_inventory=1): consumed and reported, inventory stays 1.
    nxt, phi = _go(spec, level, _state(spec, (1, 0), consumed=[k1], inventory=1), DOWN)
    assert nxt.pos.tolist() == [2, 0] and int(nxt.inventory) == 1
    assert bool(nxt.consumed[k2]) and _only(phi, key=1)


def test_chest_opens_only_with_a_key_and_uses_it(world):
    spec, level, _ = world
    chest, k1 = _slot(level, (1, 2)), _slot(level, (0, 2))
    # No key: the agent walks onto the chest, nothing happens.
    nxt, phi = _go(spec, level, _state(spec, (1, 3)), LEFT)
    assert nxt.pos.tolist() == [1, 2] and not bool(nxt.consumed[chest]) and int(nxt.inventory) == 0
    assert _only(phi)
    # With a key: it opens, the key is spent.
    nxt, phi = _go(spec, level, _state(spec, (1, 3), consumed=[k1], inventory=1), LEFT)
    assert bool(nxt.consumed[chest]) and int(nxt.inventory) == 0 and not bool(nxt.done)
    assert _only(phi, chest=1)
    # Opened chests stay open: re-entering with another key does nothing and keeps the key.
    nxt, phi = _go(spec, level, _state(spec, (1, 3), consumed=[k1, chest], inventory=1), LEFT)
    assert int(nxt.inventory) == 1 and _only(phi)
    # Picking the key above the chest and stepping down opens it: key, then chest, one step each.
    s, phi1 = _go(spec, level, _state(spec, (0, 1)), RIGHT)
    s, phi2 = _go(spec, level, s, DOWN)
    assert _only(phi1, key=1) and _only(phi2, chest=1) and int(s.inventory) == 0


def test_lava_is_never_consumed_and_fires_on_every_entry(world):
    spec, level, _ = world
    lava = _slot(level, (2, 4))
    s = _state(spec, (2, 3))
    for _ in range(3):
        s, phi = _go(spec, level, s, RIGHT)
        assert s.pos.tolist() == [2, 4] and _only(phi, lava=1)
        assert not bool(s.consumed[lava]) and not bool(s.done)
        s, phi = _go(spec, level, s, LEFT)
        assert _only(phi)
    # Documented choice: features describe the square after the move, so bumping a wall (here the
    # grid edge) while standing in lava counts again, like a region.
    s, _ = _go(spec, level, s, RIGHT)
    s, phi = _go(spec, level, s, RIGHT)
    assert s.pos.tolist() == [2, 4] and _only(phi, lava=1)


@pytest.mark.parametrize(
    ("kind", "pos", "action", "target"),
    [("cheese", (2, 3), DOWN, (3, 3)), ("coin", (2, 1), DOWN, (3, 1)), ("door_red", (4, 0), RIGHT, (4, 1))],
)
def test_terminal_objects_end_the_episode(world, kind, pos, action, target):
    spec, level, _ = world
    slot = _slot(level, target)
    s, phi = _go(spec, level, _state(spec, pos, inventory=1), action)
    assert bool(s.done) and s.pos.tolist() == list(target) and bool(s.consumed[slot])
    assert _only(phi, **{kind: 1})
    # Absorbing: every action leaves the state as it is, with all-zero features (no step, no region).
    for a in range(4):
        s2, phi = _go(spec, level, s, a)
        for f in State._fields:
            np.testing.assert_array_equal(np.asarray(getattr(s2, f)), np.asarray(getattr(s, f)))
        assert all(v == 0.0 for v in phi.values())


def test_terminal_state_next_to_a_key_stays_put(world):
    """A done state ignores objects around it (would pick the key up if it were live)."""
    spec, level, _ = world
    s = _state(spec, (0, 1), done=True)
    s2, phi = _go(spec, level, s, RIGHT)
    assert s2.pos.tolist() == [0, 1] and int(s2.inventory) == 0 and not s2.consumed.any()
    assert all(v == 0.0 for v in phi.values())


def test_region_feature_after_the_move(world):
    spec, level, _ = world
    k1 = _slot(level, (0, 2))
    s = _state(spec, (0, 2), consumed=[k1])
    s, phi = _go(spec, level, s, RIGHT)
    assert s.pos.tolist() == [0, 3] and _only(phi, zone=1)  # entering
    s, phi = _go(spec, level, s, UP)
    assert s.pos.tolist() == [0, 3] and _only(phi, zone=1)  # bumping in place, still inside
    s, phi = _go(spec, level, s, DOWN)
    assert s.pos.tolist() == [1, 3] and _only(phi, zone=1)  # moving within
    s, phi = _go(spec, level, s, DOWN)
    assert s.pos.tolist() == [2, 3] and _only(phi)  # leaving: the square before the move does not count


def test_kind_outside_spec_kinds_acts_but_has_no_feature_or_channel(draw_level):
    """A cheese in a level whose spec only lists coins: it still ends the episode, silently."""
    spec, level, _ = draw_level(("S.C", "..O"), kinds=("coin",))
    assert feature_names(spec) == ("coin", "step")
    s, phi = _step(spec, level, reset(level), jnp.int32(RIGHT))
    s, phi = _step(spec, level, s, jnp.int32(RIGHT))
    assert bool(s.done) and np.asarray(phi).tolist() == [0.0, 1.0]
    obs = np.asarray(_observe(spec, level, reset(level)))
    assert obs.shape == (2, 3, 3)  # walls, agent, coin
    assert obs[..., 2].sum() == 1.0 and obs[1, 2, 2] == 1.0


def test_full_observation_channels(world):
    spec, level, _ = world
    k1, chest = _slot(level, (0, 2)), _slot(level, (1, 2))
    s = _state(spec, (0, 3), consumed=[k1], inventory=1)
    obs = np.asarray(_observe(spec, level, s))
    assert obs.shape == spec.obs_shape == (5, 5, 2 + len(KINDS) + 1)
    walls = np.array([[ch == "#" for ch in row] for row in ROWS], float)
    np.testing.assert_array_equal(obs[..., 0], walls)
    agent = np.zeros((5, 5))
    agent[0, 3] = 1
    np.testing.assert_array_equal(obs[..., 1], agent)
    expected = {
        "lava": [(2, 4)],
        "cheese": [(3, 3)],
        "key": [(2, 0)],  # the key at (0, 2) is consumed
        "chest": [(1, 2)],
        "coin": [(3, 1)],
        "door_red": [(4, 1)],
    }
    for i, kind in enumerate(KINDS):
        want = np.zeros((5, 5))
        for rc in expected[kind]:
            want[rc] = 1
        np.testing.assert_array_equal(obs[..., 2 + i], want, err_msg=kind)
    np.testing.assert_array_equal(obs[..., -1], np.ones((5, 5)))  # 1 key of max_inventory 1
    # The chest disappears once opened; the inventory channel drops to 0.
    s = _state(spec, (1, 2), consumed=[k1, chest], inventory=0)
    obs = np.asarray(_observe(spec, level, s))
    assert obs[..., 2 + KINDS.index("chest")].sum() == 0 and obs[..., -1].sum() == 0
    # Objects never cover more than their squares: the empty slot at (0, 0) draws nothing.
    assert obs[..., 2:-1].sum() == 5


def test_inventory_channel_is_a_fraction(draw_level):
    spec, level, _ = draw_level(("SKK", "..."), max_inventory=2)
    assert spec.n_channels == 2 + 1 + 1
    s = reset(level)
    fractions = []
    for _ in range(2):
        s, _ = _step(spec, level, s, jnp.int32(RIGHT))
        fractions.append(np.unique(np.asarray(_observe(spec, level, s))[..., -1]).tolist())
    assert fractions == [[0.5], [1.0]]


def test_egocentric_observation_is_the_full_view_recentred(world, draw_level):
    spec_full, level, _ = world
    spec_ego, level_ego, _ = draw_level(ROWS, regions={"zone": ZONE}, kinds=KINDS, max_inventory=1, empty_slots=1, view="egocentric")
    h, w = spec_full.height, spec_full.width
    assert spec_ego.obs_shape == (2 * h - 1, 2 * w - 1, spec_full.n_channels - 1)
    k1 = _slot(level, (0, 2))
    for pos in [(0, 0), (2, 3), (4, 4), (3, 0)]:
        s = _state(spec_full, pos, consumed=[k1], inventory=1)
        full = np.delete(np.asarray(_observe(spec_full, level, s)), 1, axis=-1)  # drop the agent channel
        ego = np.asarray(_observe(spec_ego, level_ego, s))
        assert ego.shape == spec_ego.obs_shape
        for i in range(2 * h - 1):
            for j in range(2 * w - 1):
                r, c = pos[0] + i - (h - 1), pos[1] + j - (w - 1)
                if 0 <= r < h and 0 <= c < w:
                    np.testing.assert_array_equal(ego[i, j], full[r, c])
                else:
                    want = np.zeros(spec_ego.n_channels)
                    want[0] = 1.0  # outside the grid: wall, nothing else (not even the inventory)
                    np.testing.assert_array_equal(ego[i, j], want)


def test_step_batches_over_levels_with_vmap(world):
    spec, level, _ = world
    batch = Level(*(jnp.stack([x, x]) for x in level))
    states = State(
        pos=jnp.array([[0, 1], [2, 3]], jnp.int32),
        consumed=jnp.zeros((2, spec.n_objects), bool),
        inventory=jnp.zeros((2,), jnp.int32),
        done=jnp.zeros((2,), bool),
    )
    nxt, phi = jax.jit(jax.vmap(lambda lv, s, a: step(spec, lv, s, a)))(batch, states, jnp.array([RIGHT, DOWN]))
    for i, (pos, a) in enumerate([((0, 1), RIGHT), ((2, 3), DOWN)]):
        one, phi_one = _step(spec, level, _state(spec, pos), jnp.int32(a))
        np.testing.assert_array_equal(np.asarray(nxt.pos[i]), np.asarray(one.pos))
        np.testing.assert_array_equal(np.asarray(phi[i]), np.asarray(phi_one))
    assert bool(nxt.done[1]) and not bool(nxt.done[0])


def test_gridspec_validates_and_counts(world):
    spec, _, _ = world
    assert spec.n_states == 5 * 5 * 2**3 * 2 + 1
    assert spec.n_actions == 4
    with pytest.raises(ValueError, match="view"):
        GridSpec(3, 3, 1, view="sideways")
    with pytest.raises(ValueError, match="kind"):
        GridSpec(3, 3, 1, kinds=("dragon",))
