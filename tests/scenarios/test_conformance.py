"""Every registered scenario conforms; a deliberately broken scenario fails the matching check."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.adapters import LEVEL_BLOCK
from mesascope.levels.grid import KIND_INDEX, GridSpec, Level
from mesascope.levels.mazes import sample_free_cell
from mesascope.scenarios import registered_ids
from mesascope.scenarios.base import Scenario
from mesascope.scenarios.conformance import ConformanceReport, check_scenario
from mesascope.types import MesascopeError, Objective


@pytest.mark.parametrize("scenario_id", registered_ids())
def test_registered_scenario_conforms(scenario_id: str) -> None:
    report = check_scenario(scenario_id)
    assert report.passed, str(report)
    assert report.scenario_id == scenario_id
    assert {c.name.split("/")[0] for c in report.checks} >= {
        "same_key_same_levels",
        "different_keys_different_levels",
        "valid_levels",
        "reachable_base_reward",
        "tabular_consistent",
        "objectives_use_known_features",
        "candidate_goals_non_empty",
        "gymnasium_env_checker",
    }


# A toy scenario (an open 5x5 room, cheese anywhere) that is cheap to compile, and ways to break it.

# Slot 0 is a tracked slot for a key (empty in the good levels), slot 1 holds the cheese. Every broken
# variant but one reuses this spec, so the checker's programs compile once.
SPEC = GridSpec(
    height=5, width=5, n_objects=2, n_tracked=1, max_inventory=1, kinds=("cheese", "key"), regions=("corner",), max_steps=20
)
N = LEVEL_BLOCK  # levels per split; the Gymnasium adapter draws blocks of this size, so both share one program
CHEESE = KIND_INDEX["cheese"]


def _room() -> jax.Array:
    walls = jnp.ones((5, 5), bool)
    return walls.at[1:4, 1:4].set(False)


def _corner() -> jax.Array:
    return jnp.zeros((1, 5, 5), bool).at[0, 1, 3].set(True)


def _good_level(key: jax.Array, split: str) -> Level:
    k_start, k_cheese = jax.random.split(key)
    free = ~_room()
    start = sample_free_cell(k_start, free)
    rows, cols = jnp.mgrid[:5, :5]
    cheese = sample_free_cell(k_cheese, free & ~((rows == start[0]) & (cols == start[1])))
    return Level(_room(), jnp.array([0, CHEESE], jnp.int32), jnp.stack([cheese, cheese]), start, _corner())


def _toy(make_level=_good_level, **changes) -> Scenario:
    base = Scenario(
        id="toy-room-v0",
        description="An open 3x3 room with the cheese anywhere.",
        expected_finding="None: a test fixture.",
        spec=SPEC,
        make_level=make_level,
        base_objective=Objective.of("base", {"cheese": 1.0}),
        intended_objective=Objective.of("intended", {"cheese": 1.0}),
        candidate_goals=(Objective.of("cheese", {"cheese": 1.0}), Objective.of("corner", {"corner": 1.0})),
    )
    return dataclasses.replace(base, **changes)


def _ignores_key(key: jax.Array, split: str) -> Level:
    return _good_level(jax.random.key(0), split)


def _cheese_on_wall(key: jax.Array, split: str) -> Level:
    return _good_level(key, split)._replace(obj_pos=jnp.array([[0, 0], [0, 2]], jnp.int32))


def _cheese_walled_in(key: jax.Array, split: str) -> Level:
    # The cheese sits in the top-left square; walls at (1, 2) and (2, 1) cut it off from the start.
    walls = _room().at[1, 2].set(True).at[2, 1].set(True)
    start = jnp.stack([jnp.int32(3), jax.random.randint(key, (), 1, 4)])
    return Level(walls, jnp.array([0, CHEESE], jnp.int32), jnp.array([[1, 1], [1, 1]], jnp.int32), start, _corner())


def _names(report: ConformanceReport, passed: bool) -> set[str]:
    return {c.name for c in report.checks if c.passed == passed}


def test_toy_scenario_conforms() -> None:
    report = check_scenario(_toy(), n_levels=N)
    assert report.passed, str(report)
    assert len(report.checks) == 14
    only = check_scenario(_toy(), splits=("deploy",), gymnasium_check=False)
    assert only.passed and len(only.checks) == 7 and all("train" not in c.name for c in only.checks)


def test_make_level_ignoring_its_key_fails_key_dependence() -> None:
    report = check_scenario(_toy(_ignores_key), splits=("train",), gymnasium_check=False)
    assert _names(report, False) == {"different_keys_different_levels/train"}
    assert "ignore its key" in report.check("different_keys_different_levels/train").message
    assert report.check("same_key_same_levels/train").passed


def test_cheese_on_a_wall_fails_validity() -> None:
    report = check_scenario(_toy(_cheese_on_wall), splits=("train",), gymnasium_check=False)
    failed = _names(report, False)
    assert "valid_levels/train" in failed
    assert "on a wall" in report.check("valid_levels/train").message
    assert f"{N} of {N} levels" in report.check("valid_levels/train").message
    assert report.check("same_key_same_levels/train").passed


def test_unreachable_reward_fails_reachability_only() -> None:
    report = check_scenario(_toy(_cheese_walled_in), splits=("train",), gymnasium_check=False)
    assert _names(report, False) == {"reachable_base_reward/train"}
    assert "no positive base reward reachable" in report.check("reachable_base_reward/train").message


def _key_in_slot(slot: int):
    """Levels with a key just above the start, in object slot `slot` (SPEC tracks slot 0 only)."""

    def level(key: jax.Array, split: str) -> Level:
        start = jnp.stack([jnp.int32(3), jax.random.randint(key, (), 1, 3)])
        key_pos, cheese_pos = start - jnp.array([1, 0]), jnp.array([1, 3])
        kinds = [KIND_INDEX["key"], CHEESE] if slot == 0 else [CHEESE, KIND_INDEX["key"]]
        pos = [key_pos, cheese_pos] if slot == 0 else [cheese_pos, key_pos]
        return Level(_room(), jnp.array(kinds, jnp.int32), jnp.stack(pos).astype(jnp.int32), start.astype(jnp.int32), _corner())

    return level


def test_untracked_key_breaks_the_tabular_view() -> None:
    # A key is consumed without ending the episode, so it needs a tracked slot; slot 1 is not tracked.
    broken = check_scenario(_toy(_key_in_slot(1)), splits=("train",), gymnasium_check=False)
    assert _names(broken, False) == {"tabular_consistent/train"}
    assert "round-trip" in broken.check("tabular_consistent/train").message
    fixed = check_scenario(_toy(_key_in_slot(0)), splits=("train",), gymnasium_check=False)
    assert fixed.passed, str(fixed)


def test_objective_problems_fail_their_checks() -> None:
    report = check_scenario(
        _toy(base_objective=Objective.of("base", {"coin": 1.0}), candidate_goals=()), splits=("train",), gymnasium_check=False
    )
    assert _names(report, False) == {
        "objectives_use_known_features",
        "candidate_goals_non_empty",
        "reachable_base_reward/train",  # the base objective names no feature of these levels
    }
    assert "unknown feature" in report.check("objectives_use_known_features").message
    clash_goals = (Objective.of("base", {"corner": 1.0}),)
    clash = check_scenario(_toy(candidate_goals=clash_goals), splits=("train",), gymnasium_check=False)
    assert _names(clash, False) == {"objectives_use_known_features"}


def test_two_objects_on_one_square_fail_validity_and_the_env_checker() -> None:
    def level(key: jax.Array, split: str) -> Level:
        return _good_level(key, split)._replace(obj_kind=jnp.array([CHEESE, CHEESE], jnp.int32))

    report = check_scenario(_toy(level), n_levels=N)
    assert "two objects on one square" in report.check("valid_levels/train").message
    # The doubled cheese channel reads 2.0, outside the Box(0, 1) observation space.
    assert not report.check("gymnasium_env_checker/train").passed
    assert "observation space" in report.check("gymnasium_env_checker/train").message


def test_crashing_generator_fails_checks_instead_of_raising() -> None:
    def crash(key: jax.Array, split: str) -> Level:
        raise RuntimeError("generator exploded")

    report = check_scenario(_toy(crash), splits=("train",), gymnasium_check=False)
    assert not report.check("valid_levels/train").passed
    assert "generator exploded" in report.check("valid_levels/train").message
    assert report.check("candidate_goals_non_empty").passed


def test_strict_raises_listing_every_failure() -> None:
    with pytest.raises(MesascopeError) as err:
        check_scenario(_toy(_cheese_on_wall), splits=("train",), gymnasium_check=False, strict=True)
    assert "valid_levels/train" in str(err.value) and "on a wall" in str(err.value)
    assert check_scenario(_toy(), splits=("train",), gymnasium_check=False, strict=True).passed
    with pytest.raises(KeyError):
        check_scenario(_toy(), splits=("train",), gymnasium_check=False).check("no-such-check")
    with pytest.raises(MesascopeError, match="at least 2"):
        check_scenario(_toy(), n_levels=1)


def test_randomness_outside_the_key_fails_same_key() -> None:
    rng = np.random.default_rng(0)

    def leaky(key: jax.Array, split: str) -> Level:
        # numpy randomness at trace time: frozen into one compiled sampler, different in every process.
        return _good_level(jax.random.fold_in(key, int(rng.integers(1 << 30))), split)

    report = check_scenario(_toy(leaky), splits=("train",), gymnasium_check=False)
    assert _names(report, False) == {"same_key_same_levels/train"}
    assert "outside its key" in report.check("same_key_same_levels/train").message


def test_edits_that_break_levels_fail_the_edit_check() -> None:
    def good_edit(key: jax.Array, level: Level) -> Level:
        # Move the cheese (slot 1) to a random free square other than the start.
        rows, cols = jnp.mgrid[:5, :5]
        free = ~level.walls & ~((rows == level.start[0]) & (cols == level.start[1]))
        return level._replace(obj_pos=level.obj_pos.at[1].set(sample_free_cell(key, free)))

    def bad_edit(key: jax.Array, level: Level) -> Level:
        return level._replace(obj_pos=level.obj_pos.at[1].set(jnp.array([0, 0], jnp.int32)))  # onto the wall

    ok = check_scenario(_toy(mutate=good_edit), gymnasium_check=False, splits=("train",))
    assert ok.check("edits_keep_levels_valid").passed, str(ok)
    bad = check_scenario(_toy(mutate=bad_edit), gymnasium_check=False, splits=("train",))
    assert "after edits" in bad.check("edits_keep_levels_valid").message and "on a wall" in bad.check("edits_keep_levels_valid").message
    assert "edits_keep_levels_valid" not in {c.name for c in check_scenario(_toy(), gymnasium_check=False, splits=("train",)).checks}
