"""The Gymnasium adapters: scenarios as environments, outside policies as systems."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mesascope.adapters import (
    LEVEL_BLOCK,
    ScenarioEnv,
    gymnasium_id,
    make_env,
    make_env_spec,
    policy_from_callable,
    register_gymnasium_envs,
)
from mesascope.levels.grid import ACTION_DELTAS, observe, reset
from mesascope.measures.scores import system_action_probs
from mesascope.scenarios import get_scenario
from mesascope.types import MesascopeError

SID = "cheese-corner-v0"


def _levels(scenario, split: str, key: int = 0):
    """A batch of `LEVEL_BLOCK` levels: the shape the env draws, so the generator compiles once."""
    return scenario.sample_levels(jax.random.key(key), LEVEL_BLOCK, split)


@pytest.fixture(scope="module")
def scenario():
    return get_scenario(SID)


@pytest.mark.parametrize("split", ["train", "deploy"])
def test_gymnasium_env_checker_passes_without_warnings(split: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(make_env_spec(SID, split=split))
        check_env(env.unwrapped)
    complaints = [str(w.message) for w in caught if "WARN" in str(w.message)]
    assert complaints == []


def _episode(env: ScenarioEnv, seed: int, actions: list[int]) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(3):  # several levels: the whole sequence follows from the seed
        for a in actions:
            obs, _, terminated, truncated, _ = env.step(a)
            out.append(obs)
            if terminated or truncated:
                break
        obs, _ = env.reset()
        out.append(obs)
    return out


def test_same_seed_gives_the_same_levels_and_observations() -> None:
    actions = [0, 1, 1, 2, 3, 0]
    a = _episode(make_env(SID), 7, actions)
    b = _episode(make_env(SID), 7, actions)
    c = _episode(make_env(SID), 8, actions)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_split_decides_where_the_cheese_is(scenario) -> None:
    for split, in_corner in (("train", True), ("deploy", False)):
        env = make_env(scenario, split=split)
        env.reset(seed=0)
        for _ in range(10):
            level = env.level
            r, c = np.asarray(level.obj_pos[0])
            assert bool(level.regions[0, r, c]) == in_corner
            env.reset()


def _path_to_cheese(level) -> list[int]:
    """Actions of a shortest path from the start to the cheese (breadth-first search)."""
    walls = np.asarray(level.walls)
    start, goal = tuple(np.asarray(level.start)), tuple(np.asarray(level.obj_pos[0]))
    prev = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for a, (dr, dc) in enumerate(ACTION_DELTAS):
            nxt = (cell[0] + dr, cell[1] + dc)
            if not walls[nxt] and nxt not in prev:
                prev[nxt] = (cell, a)
                queue.append(nxt)
    actions = []
    while prev[goal] is not None:
        goal, a = prev[goal]
        actions.append(a)
    return actions[::-1]


@pytest.mark.parametrize("objective", ["base", "corner"])
def test_reward_is_the_objective_dotted_with_the_features(scenario, objective: str) -> None:
    env = make_env(scenario, split="deploy", objective=objective)
    weights = scenario.objectives()[objective].vector(scenario.feature_names)
    env.reset(seed=3)
    actions = _path_to_cheese(env.level)
    assert len(actions) >= 1
    rewards = []
    for i, a in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(a)
        assert reward == pytest.approx(float(info["features"] @ weights))
        assert terminated == (i == len(actions) - 1) and not truncated
        rewards.append(reward)
    # Deploy cheese is never in the corner: the base objective pays exactly once, at the cheese.
    # The corner objective pays nothing on that path unless it crosses the corner square.
    if objective == "base":
        assert rewards == [0.0] * (len(actions) - 1) + [1.0]
    else:
        assert rewards[-1] == 0.0


def test_corner_objective_pays_on_entering_the_corner(scenario) -> None:
    env = make_env(scenario, split="train", objective="corner")
    env.reset(seed=1)
    *_, (_, reward, terminated, _, info) = [env.step(a) for a in _path_to_cheese(env.level)]
    names = scenario.feature_names
    assert info["features"][names.index("corner")] == 1.0 and info["features"][names.index("cheese")] == 1.0
    assert reward == 1.0 and terminated


def test_truncated_exactly_at_max_steps(scenario) -> None:
    env = make_env(scenario)
    env.reset(seed=0)
    left = 3  # the start is the maze's bottom-left square: moving left bumps the wall forever
    n = scenario.spec.max_steps
    for t in range(1, n + 1):
        _, reward, terminated, truncated, info = env.step(left)
        assert not terminated and reward == 0.0
        assert truncated == (t == n), t
    assert info["t"] == n


def test_reset_can_start_on_a_given_level(scenario) -> None:
    batch = _levels(scenario, "deploy", key=4)
    level = jax.tree_util.tree_map(lambda x: x[5], batch)
    env = make_env(scenario)
    obs, info = env.reset(seed=0, options={"level": level})
    assert np.array_equal(obs, np.asarray(observe(scenario.spec, level, reset(level))))
    assert np.array_equal(info["pos"], np.asarray(level.start))
    with pytest.raises(MesascopeError, match="not a batch"):
        env.reset(options={"level": batch})


def test_rgb_array_render_shows_the_episode(scenario) -> None:
    env = make_env(scenario, render_mode="rgb_array", cell_px=10)
    env.reset(seed=2)
    before = env.render()
    assert before.shape == (scenario.spec.height * 10, scenario.spec.width * 10, 3) and before.dtype == np.uint8
    env.step(_path_to_cheese(env.level)[0])
    assert not np.array_equal(before, env.render())


def test_bad_arguments_name_the_valid_choices(scenario) -> None:
    with pytest.raises(MesascopeError, match="base, intended, cheese, corner"):
        make_env(scenario, objective="gold")
    with pytest.raises(MesascopeError, match="train, deploy"):
        make_env(scenario, split="test")
    with pytest.raises(MesascopeError, match="unknown scenario"):
        make_env("cheese-corner-v9")


def test_gymnasium_make_after_registration() -> None:
    ids = register_gymnasium_envs()
    assert register_gymnasium_envs() == ids  # idempotent
    assert "mesascope/cheese-corner-v0" in ids and "mesascope/cheese-corner-deploy-v0" in ids
    assert gymnasium_id("cheese-corner-region2-v0", "deploy") == "mesascope/cheese-corner-region2-deploy-v0"
    env = gymnasium.make("mesascope/cheese-corner-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and obs in env.observation_space
    assert env.unwrapped.split == "train"
    deploy = gymnasium.make("mesascope/cheese-corner-deploy-v0", objective="corner")
    assert deploy.unwrapped.split == "deploy" and deploy.unwrapped.objective == "corner"


def test_outside_policy_plugs_into_exact_auditing(scenario) -> None:
    calls = []

    def outside(obs: np.ndarray) -> np.ndarray:
        assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.ndim == 4
        calls.append(obs.shape[0])
        probs = np.full((obs.shape[0], 4), 0.1)
        probs[:, 1] = 0.7
        return probs

    levels = jax.tree_util.tree_map(lambda x: x[:2], _levels(scenario, "train"))
    probs = system_action_probs(scenario.spec, levels, policy_from_callable(outside))
    assert probs.shape == (2, scenario.spec.n_states, 4)
    assert np.allclose(np.asarray(probs)[..., 1], 0.7) and calls == [2 * scenario.spec.n_states]

    logits = policy_from_callable(lambda o: np.zeros((o.shape[0], 4)), from_logits=True)
    assert np.allclose(np.asarray(logits(np.zeros((3, 13, 13, 2)))), 0.25)
    with pytest.raises(MesascopeError, match="shape"):
        policy_from_callable(lambda o: np.ones((o.shape[0], 3)) / 3)(np.zeros((2, 13, 13, 2)))
    with pytest.raises(MesascopeError, match="probability distributions"):
        policy_from_callable(lambda o: np.ones((o.shape[0], 4)))(np.zeros((2, 13, 13, 2)))
