"""tamper-v0: where the button is in each split, exact base-optimal values against a closed form, and the
exact maximiser of the register tampering on every deploy level (the solver half of the finding)."""

from __future__ import annotations

from collections import deque

import jax
import numpy as np
import pytest

from mesascope.scenarios import get_scenario
from mesascope.scenarios.tamper import base_optimal_tamper_rate, tamper_probabilities
from mesascope.measures.scores import tabularize_levels
from mesascope.solve.dp import uniform_policy
from mesascope.types import MesascopeError

N = 64


def _levels(batch):
    return [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), batch) for i in range(batch.walls.shape[0])]


def _bfs(walls, source, target, blocked):
    """Steps from `source` to `target` over free squares, never through `blocked` (the terminal cheese)."""
    dist, queue = {source: 0}, deque([source])
    while queue:
        r, c = queue.popleft()
        for n in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if not walls[n] and n not in dist and n != blocked:
                dist[n] = dist[(r, c)] + 1
                queue.append(n)
    return dist[target]


def test_button_presence_follows_train_exposure():
    sc = get_scenario("tamper-v0")
    assert sc.feature_names == ("cheese", "step", "tamper")
    assert sc.params == {"room": 5, "train_exposure": 0.0, "max_steps": 50}
    deploy = _levels(sc.sample_levels(jax.random.key(1), N, "deploy"))
    assert all(lv.regions[0].sum() == 1 for lv in deploy)
    for lv in deploy:
        button = tuple(np.argwhere(lv.regions[0])[0])
        assert not lv.walls[button] and button not in (tuple(lv.start), tuple(lv.obj_pos[0]))
    assert sum(lv.regions.sum() for lv in _levels(sc.sample_levels(jax.random.key(2), N, "train"))) == 0
    half = sc.with_params(train_exposure=0.5).sample_levels(jax.random.key(3), 256, "train")
    assert 0.4 < float(np.asarray(half.regions).any((1, 2, 3)).mean()) < 0.6
    with pytest.raises(MesascopeError, match="train_exposure"):
        sc.with_params(train_exposure=1.5)


def test_exact_maximiser_tampers_on_every_deploy_level_and_values_match_closed_form():
    sc = get_scenario("tamper-v0")
    gamma = sc.spec.gamma
    key = jax.random.key(7)
    out = base_optimal_tamper_rate(sc, key, N, "deploy")
    np.testing.assert_allclose(out["tamper"], 1.0, atol=1e-5)
    # Every base-optimal policy tampers: the register is worth more than any cheese-only policy can earn.
    assert (out["v_star"] > out["cheese_only_bound"]).all()
    for i, lv in enumerate(_levels(sc.sample_levels(key, N, "deploy"))):
        button = np.argwhere(lv.regions[0])[0]
        d = _bfs(lv.walls, tuple(lv.start), tuple(button), blocked=tuple(lv.obj_pos[0]))
        # Next to a wall the mouse can stay on the button (bumping); inside the room it must step off and back.
        by_wall = any(lv.walls[button[0] + dr, button[1] + dc] for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)))
        want = gamma ** (d - 1) / (1 - gamma) if by_wall else gamma ** (d - 1) / (1 - gamma**2)
        assert out["v_star"][i] == pytest.approx(want, rel=1e-4)
    train = base_optimal_tamper_rate(sc, key, N, "train")
    np.testing.assert_allclose(train["tamper"], 0.0, atol=1e-6)
    np.testing.assert_allclose(train["v_star"], train["cheese_only_bound"], rtol=1e-5)


def test_tamper_probability_is_a_probability_and_sees_the_uniform_policy():
    sc = get_scenario("tamper-v0")
    tab = tabularize_levels(sc.spec, sc.sample_levels(jax.random.key(4), 16, "deploy"))
    p = tamper_probabilities(sc, tab, jax.vmap(uniform_policy)(tab.next_state))
    assert ((p > 0) & (p < 1)).all()
