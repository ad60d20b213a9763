"""GridSpec's optional region behaviours: visible regions, terminal regions and region deltas."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import KIND_INDEX, GridSpec, Level, feature_names, observe, reset, step

UP, RIGHT, DOWN, LEFT = range(4)


def _level(spec: GridSpec) -> Level:
    walls = np.ones((4, 5), bool)
    walls[1:3, 1:4] = False  # a 2x3 room
    regions = np.zeros((len(spec.regions), 4, 5), bool)
    regions[0, 1, 2] = True  # "goal": the top-middle square
    if len(spec.regions) > 1:
        regions[1, 2, 1:4] = True  # "floor": the bottom row
    return Level(
        walls=jnp.asarray(walls),
        obj_kind=jnp.array([KIND_INDEX["cheese"]], jnp.int32),
        obj_pos=jnp.array([[1, 3]], jnp.int32),
        start=jnp.array([1, 1], jnp.int32),
        regions=jnp.asarray(regions),
    )


def test_defaults_change_nothing():
    spec = GridSpec(4, 5, 1, regions=("goal",), kinds=("cheese",), view="full")
    level = _level(spec)
    assert spec.n_channels == 3 and feature_names(spec) == ("cheese", "step", "goal")
    state, phi = step(spec, level, reset(level), jnp.int32(RIGHT))
    np.testing.assert_array_equal(np.asarray(phi), [0, 1, 1])
    assert not bool(state.done)  # a plain region does not end the episode


def test_observed_region_is_a_channel():
    spec = GridSpec(4, 5, 1, regions=("goal", "floor"), kinds=("cheese",), view="full", observed_regions=("floor",))
    level = _level(spec)
    obs = np.asarray(observe(spec, level, reset(level)))
    assert obs.shape == (4, 5, 4) and spec.n_channels == 4
    np.testing.assert_array_equal(obs[..., -1], np.asarray(level.regions[1], np.float32))


def test_terminal_region_ends_the_episode_after_paying_its_feature():
    spec = GridSpec(4, 5, 1, regions=("goal",), kinds=("cheese",), terminal_regions=("goal",))
    level = _level(spec)
    state, phi = step(spec, level, reset(level), jnp.int32(RIGHT))
    assert bool(state.done)
    np.testing.assert_array_equal(np.asarray(phi), [0, 1, 1])
    _, after = step(spec, level, state, jnp.int32(DOWN))
    np.testing.assert_array_equal(np.asarray(after), [0, 0, 0])


def test_region_deltas_are_entering_minus_leaving():
    spec = GridSpec(4, 5, 1, regions=("goal", "floor"), kinds=("cheese",), region_deltas=True)
    assert feature_names(spec) == ("cheese", "step", "goal", "floor", "delta_goal", "delta_floor")
    level = _level(spec)
    s0 = reset(level)
    s1, phi = step(spec, level, s0, jnp.int32(DOWN))  # into the floor row
    np.testing.assert_array_equal(np.asarray(phi), [0, 1, 0, 1, 0, 1])
    s2, phi = step(spec, level, s1, jnp.int32(DOWN))  # bump into the wall: stays on the floor
    np.testing.assert_array_equal(np.asarray(phi), [0, 1, 0, 1, 0, 0])
    _, phi = step(spec, level, s2, jnp.int32(UP))  # leaves the floor
    np.testing.assert_array_equal(np.asarray(phi), [0, 1, 0, 0, 0, -1])


def test_unknown_region_names_are_rejected():
    with pytest.raises(ValueError, match="not in regions"):
        GridSpec(4, 5, 1, regions=("goal",), observed_regions=("button",))
    with pytest.raises(ValueError, match="not in regions"):
        GridSpec(4, 5, 1, regions=("goal",), terminal_regions=("exit",))
