"""PPO: determinism under a key, chunked == whole, and real learning on a tiny level family."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest

from mesascope.measures.scores import score_levels, system_action_probs, tabularize_levels
from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.scenarios import get_scenario
from mesascope.systems.policy import action_probs

TINY = dict(grid_size=5, maze_sizes=(5,), region=1)


@pytest.fixture(scope="module")
def tiny():
    return get_scenario("cheese-corner-v0").with_params(**TINY)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_same_key_twice_gives_identical_training(tiny):
    cfg = ppo_config("fast", total_timesteps=4 * 64 * 64, level_pool=64)
    train = jax.jit(make_train(tiny, cfg).train)
    p1, m1 = train(jax.random.key(3))
    p2, m2 = train(jax.random.key(3))
    p3, _ = train(jax.random.key(4))
    for a, b in zip(_leaves(p1), _leaves(p2)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(m1["episode_return"]), np.asarray(m2["episode_return"]))
    assert any(not np.array_equal(a, c) for a, c in zip(_leaves(p1), _leaves(p3)))


def test_chunked_advance_equals_one_program(tiny):
    cfg = ppo_config("fast", total_timesteps=4 * 64 * 64, level_pool=64)
    trainer = make_train(tiny, cfg)
    whole, _ = jax.jit(trainer.train)(jax.random.key(0))
    assert cfg.num_updates % 2 == 0
    ts = jax.jit(trainer.init)(jax.random.key(0))
    half = jax.jit(lambda t: trainer.advance(t, cfg.num_updates // 2))
    ts, _ = half(ts)
    ts, _ = half(ts)
    for a, b in zip(_leaves(whole), _leaves(ts.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ppo_learns_tiny_mazes(tiny):
    cfg = ppo_config("fast", total_timesteps=100_000, num_envs=32, num_steps=32, level_pool=256)
    trainer = make_train(tiny, cfg)
    params, metrics = jax.jit(trainer.train)(jax.random.key(0))
    model = eqx.combine(params, trainer.static)
    levels = tiny.sample_levels(jax.random.key(99), 32, "train")
    tab = tabularize_levels(tiny.spec, levels)
    probs = system_action_probs(tiny.spec, levels, jax.jit(lambda o: action_probs(model, o)))
    _, weights = tiny.weight_matrix()
    j_base = float(score_levels(tab, probs, weights[:1], tiny.spec.gamma).j.mean())
    assert j_base >= 0.9, f"PPO should solve 5x5 mazes with a fixed goal; J_base = {j_base:.3f}"
    assert float(metrics["episode_length"][-5:].mean()) < float(metrics["episode_length"][:5].mean())
