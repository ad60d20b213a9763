"""Level curricula: the PLR buffer against hand-computed examples, exact regret against the audit's, the
levels that separate goals against brute force, and the curricula inside PPO (robust PLR learns only from
replayed levels; `dr` ignores the PLR settings)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import Level
from mesascope.measures.scores import tabularize_levels
from mesascope.measures.separation import proxy_objectives, separating_levels
from mesascope.optimizers.curricula import empty_buffer, insert_levels, replay_weights
from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.scenarios import get_scenario

TINY = dict(grid_size=5, maze_sizes=(5,), region=1)


def _level(i: int) -> Level:
    """A recognisable dummy level: its start cell holds `i`."""
    return Level(jnp.zeros((2, 2), bool), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 2), jnp.int32),
                 jnp.array([i, i], jnp.int32), jnp.zeros((1, 2, 2), bool))


def _batch(ids):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[_level(i) for i in ids])


def _insert(buf, ids, scores, returns=None, values=None, valid=None, maxmc=False):
    n = len(ids)
    returns = np.zeros(n) if returns is None else returns
    values = np.zeros(n) if values is None else values
    valid = np.ones(n, bool) if valid is None else valid
    return insert_levels(buf, _batch(ids), jnp.asarray(ids), jnp.asarray(scores, jnp.float32), jnp.asarray(returns),
                         jnp.asarray(values), jnp.asarray(valid), maxmc=maxmc)


def test_replay_weights_mix_rank_and_staleness_as_computed_by_hand():
    buf = empty_buffer(_level(0), 4)
    buf = buf._replace(scores=jnp.array([0.5, 2.0, 1.0, 9.0]), last_seen=jnp.array([2, 8, 10, 0]),
                       size=jnp.int32(3), clock=jnp.int32(10), keys=jnp.array([0, 1, 2, -1]))
    # Ranks 3, 1, 2 -> h = 1/3, 1, 1/2 (temperature 1), normalised by 11/6; staleness 8, 2, 0 of 10.
    p_rank = np.array([2 / 11, 6 / 11, 3 / 11, 0.0])
    p_stale = np.array([0.8, 0.2, 0.0, 0.0])
    w = np.asarray(replay_weights(buf, 1.0, 0.5))
    np.testing.assert_allclose(w, 0.5 * p_rank + 0.5 * p_stale, rtol=1e-6)
    # Temperature 0.5 squares h: 1/9, 1, 1/4.
    h = np.array([1 / 9, 1, 1 / 4, 0])
    np.testing.assert_allclose(np.asarray(replay_weights(buf, 0.5, 0.0)), h / h.sum(), rtol=1e-6)


def test_staleness_is_uniform_when_every_level_was_just_scored():
    buf = _insert(empty_buffer(_level(0), 4), [5, 6], [1.0, 3.0])
    w = np.asarray(replay_weights(buf, 1.0, 1.0))
    np.testing.assert_allclose(w, [0.5, 0.5, 0, 0])
    assert np.asarray(replay_weights(empty_buffer(_level(0), 4), 1.0, 0.3)).sum() == 0


def test_insertion_appends_updates_replaces_the_lowest_and_drops():
    buf = empty_buffer(_level(0), 3)
    buf = _insert(buf, [10, 11, 12], [0.3, 0.1, 0.2], returns=[1.0, 0.0, 0.5])
    assert int(buf.size) == 3
    np.testing.assert_array_equal(np.asarray(buf.keys), [10, 11, 12])
    buf = buf._replace(clock=jnp.int32(7))
    # 11 is already there: its score is replaced and its staleness reset, its record return kept at the max.
    buf = _insert(buf, [11], [0.9], returns=[-1.0])
    np.testing.assert_allclose(np.asarray(buf.scores), [0.3, 0.9, 0.2])
    np.testing.assert_array_equal(np.asarray(buf.last_seen), [0, 7, 0])
    np.testing.assert_allclose(np.asarray(buf.max_return), [1.0, 0.0, 0.5])
    # Full: 13 (0.25) replaces the lowest (12, 0.2); 14 (0.1) is lower than every score and is dropped.
    buf = _insert(buf, [13, 14], [0.25, 0.1])
    np.testing.assert_array_equal(np.asarray(buf.keys), [10, 11, 13])
    np.testing.assert_allclose(np.asarray(buf.scores), [0.3, 0.9, 0.25])
    np.testing.assert_array_equal(np.asarray(buf.levels.start[:, 0]), [10, 11, 13])
    assert int(buf.size) == 3
    # Invalid items change nothing.
    same = _insert(buf, [99], [5.0], valid=np.array([False]))
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(buf)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_batch_is_inserted_in_order():
    buf = _insert(empty_buffer(_level(0), 4), [3, 3], [0.5, 0.7])
    assert int(buf.size) == 1
    assert float(buf.scores[0]) == pytest.approx(0.7)


def test_maxmc_scores_by_the_best_return_ever_seen():
    buf = _insert(empty_buffer(_level(0), 2), [4], [0.0], returns=[1.0], values=[0.25], maxmc=True)
    assert float(buf.scores[0]) == pytest.approx(0.75)
    # A worse episode later: R_max stays 1.0, the value estimate moved.
    buf = _insert(buf, [4], [0.0], returns=[0.2], values=[0.5], maxmc=True)
    assert float(buf.scores[0]) == pytest.approx(0.5)
    assert float(buf.max_return[0]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny():
    return get_scenario("cheese-corner-v0").with_params(**TINY)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_dr_ignores_the_plr_settings(tiny):
    base = ppo_config("fast", total_timesteps=4 * 64 * 16, level_pool=64)
    other = ppo_config("fast", total_timesteps=4 * 64 * 16, level_pool=64, replay_prob=0.9, buffer_size=7, robust=False)
    p1, _ = jax.jit(make_train(tiny, base).train)(jax.random.key(2))
    p2, _ = jax.jit(make_train(tiny, other).train)(jax.random.key(2))
    for a, b in zip(_leaves(p1), _leaves(p2)):
        np.testing.assert_array_equal(a, b)


def test_robust_plr_learns_only_from_replayed_levels(tiny):
    # Never replaying, robust PLR has no transition to learn from: the network stays as initialised.
    cfg = ppo_config("fast", total_timesteps=4 * 64 * 16, level_pool=64, curriculum="plr", replay_prob=0.0)
    trainer = make_train(tiny, cfg)
    ts0 = jax.jit(trainer.init)(jax.random.key(0))
    ts, metrics = jax.jit(lambda t: trainer.advance(t, 4))(ts0)
    for a, b in zip(_leaves(ts.params), _leaves(ts0.params)):
        np.testing.assert_array_equal(a, b)
    assert float(np.asarray(metrics["replay_share"]).max()) == 0.0
    # The buffer still filled with scored fresh levels, and the reservoir sampled the levels played.
    assert int(ts.curriculum.buffer.size) > 0
    assert int(ts.curriculum.seen.count) >= int(ts.curriculum.buffer.size)


@pytest.mark.parametrize(("curriculum", "score"), [("plr", "pvl"), ("plr", "maxmc"), ("exact-plr", "pvl"), ("accel", "pvl")])
def test_plr_curricula_replay_and_are_deterministic(tiny, curriculum, score):
    cfg = ppo_config("fast", total_timesteps=30 * 64 * 16, level_pool=256, curriculum=curriculum, plr_score=score,
                     buffer_size=64, min_fill=0.25)
    train = jax.jit(make_train(tiny, cfg).train)
    p1, m1 = train(jax.random.key(5))
    p2, m2 = train(jax.random.key(5))
    for a, b in zip(_leaves(p1), _leaves(p2)):
        np.testing.assert_array_equal(a, b)
    share = np.asarray(m1["replay_share"])
    assert share[0] == 0.0 and share[-5:].mean() > 0.2  # replay starts once the buffer is a quarter full
    assert np.asarray(m1["buffer_fill"])[-1] > 0.25
    assert np.isfinite(np.asarray(m1["buffer_mean_score"])).all()


def test_unknown_curriculum_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="unknown curriculum 'ucb'; choose one of: dr, plr, exact-plr, accel"):
        make_train(tiny, ppo_config("fast", curriculum="ucb"))


def test_separating_levels_cheese_corner():
    sc = get_scenario("cheese-corner-v0")
    assert [g.name for g in proxy_objectives(sc)] == ["corner"]
    key = jax.random.key(0)
    train = separating_levels(sc, tabularize_levels(sc.spec, sc.sample_levels(key, 64, "train")))
    deploy = separating_levels(sc, tabularize_levels(sc.spec, sc.sample_levels(key, 64, "deploy")))
    # With the cheese always in the corner, going to the corner is going to the cheese. On deploy, a maze
    # whose cheese lies on the only path to the corner does not separate them either.
    assert train.shape == (64, 1) and not train.any()
    assert 0.25 < deploy.mean() < 0.75
    mixed = get_scenario("cheese-corner-v0", alpha=0.5)
    share = separating_levels(mixed, tabularize_levels(mixed.spec, mixed.sample_levels(key, 256, "train"))).mean()
    assert 0.5 * deploy.mean() - 0.15 < share < 0.5 * deploy.mean() + 0.15


def test_a_cheese_on_the_path_to_the_corner_does_not_separate():
    sc = get_scenario("cheese-corner-v0")
    levels = sc.sample_levels(jax.random.key(1), 128, "deploy")
    tab = tabularize_levels(sc.spec, levels)
    sep = separating_levels(sc, tab)[:, 0]
    # Brute force on each maze: walk the unique path from the start to the corner square; the level
    # separates exactly when the cheese is not on it.
    corner = np.asarray(levels.regions[:, 0])
    for i in range(128):
        walls = np.asarray(levels.walls[i])
        start = tuple(np.asarray(levels.start[i]))
        cheese = tuple(np.asarray(levels.obj_pos[i, 0]))
        target = tuple(np.argwhere(corner[i])[0])
        assert sep[i] == (cheese not in _path(walls, start, target)), i


def _path(walls, start, target):
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for r, c in frontier:
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                q = (r + dr, c + dc)
                if 0 <= q[0] < walls.shape[0] and 0 <= q[1] < walls.shape[1] and not walls[q] and q not in prev:
                    prev[q] = (r, c)
                    nxt.append(q)
        frontier = nxt
    cells, q = [], target
    while q is not None:
        cells.append(q)
        q = prev[q]
    return cells


def test_exact_plr_scores_levels_by_the_audits_exact_regret(tiny):
    import equinox as eqx

    from mesascope.measures.scores import policy_values, reference_values, system_action_probs
    from mesascope.systems.policy import action_probs

    cfg = ppo_config("fast", total_timesteps=64 * 16, level_pool=64, curriculum="exact-plr", buffer_size=64)
    trainer = make_train(tiny, cfg)
    ts, _ = jax.jit(lambda t: trainer.advance(t, 1))(jax.jit(trainer.init)(jax.random.key(1)))
    buf = ts.curriculum.buffer
    n = int(buf.size)
    assert n > 0  # some first episodes ended within one rollout
    levels = jax.tree_util.tree_map(lambda x: x[:n], buf.levels)
    tab = tabularize_levels(tiny.spec, levels)
    net = eqx.combine(ts.params, trainer.static)
    probs = system_action_probs(tiny.spec, levels, lambda obs: action_probs(net, obs))
    w = jnp.asarray(tiny.base_objective.vector(tiny.feature_names))[None]
    reach = np.array([tiny.base_objective.reach])
    v_star, _ = reference_values(tab, w, tiny.spec.gamma, reach=reach)
    v_pi = policy_values(tab, probs, w, tiny.spec.gamma, reach=reach)
    np.testing.assert_allclose(np.asarray(buf.scores[:n]), np.asarray(v_star - v_pi)[:, 0], atol=2e-5)


def test_accel_adds_edited_children_of_replayed_levels(tiny):
    from mesascope.scenarios.conformance import _check_reachable, _check_valid

    cfg = ppo_config("fast", total_timesteps=30 * 64 * 16, level_pool=256, curriculum="accel", buffer_size=64,
                     min_fill=0.25)
    trainer = make_train(tiny, cfg)
    ts, _ = jax.jit(lambda t: trainer.advance(t, 30))(jax.jit(trainer.init)(jax.random.key(5)))
    buf = ts.curriculum.buffer
    n = int(buf.size)
    children = np.asarray(buf.keys[:n]) >= cfg.level_pool
    assert children.any()  # edited levels entered the buffer, under keys no pool level has
    levels = jax.tree_util.tree_map(lambda x: x[:n], buf.levels)
    assert _check_valid(tiny.spec, levels)[0]
    assert _check_reachable(tiny, tabularize_levels(tiny.spec, levels))[0]


def test_accel_needs_a_scenario_with_edits():
    sc = get_scenario("red-door-v0")
    assert sc.mutate is None
    with pytest.raises(ValueError, match="declares no edits"):
        make_train(sc, ppo_config("fast", curriculum="accel"))


def test_shown_separating_reads_the_reservoir(tiny):
    from mesascope.experiments.train import shown_separating

    mixed = get_scenario("cheese-corner-v0", alpha=0.5)
    cfg = ppo_config("fast", total_timesteps=8 * 64 * 16, level_pool=256)
    trainer = make_train(mixed, cfg)
    ts, _ = jax.jit(jax.vmap(lambda k: trainer.advance(trainer.init(k), 8)))(jnp.stack([jax.random.key(0), jax.random.key(1)]))
    share = shown_separating(mixed, ts)
    assert share.shape == (2,) and (0.05 < share).all() and (share < 0.5).all()
    plain = make_train(tiny, cfg)
    ts, _ = jax.jit(jax.vmap(lambda k: plain.advance(plain.init(k), 8)))(jnp.stack([jax.random.key(0)]))
    assert (shown_separating(tiny, ts) == 0).all()  # alpha 0: the cheese is always in the corner


def test_accel_on_a_scenario_without_edits_is_refused_before_anything_is_written(tmp_path, capsys):
    from mesascope.cli import main

    out = tmp_path / "run"
    assert main(["run", "red-door-v0", "--set", "curriculum=accel", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "declares no edits" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["run", "cheese-corner-v0", "--set", "curriculum=ucb", "--out", str(out)]) == 2
    assert "curriculum must be one of" in capsys.readouterr().err and not out.exists()


def test_exact_regret_against_shortest_paths_and_a_numpy_solve(tiny):
    """The buffer's scores against a second implementation: `V*` from breadth-first shortest paths (one
    cheese, paid on arrival, ends the episode: `gamma^(d-1)` for a path of `d` steps) and `V^pi` from a
    float64 NumPy linear solve of the network's Markov chain."""
    import equinox as eqx

    from mesascope.measures.scores import system_action_probs
    from mesascope.systems.policy import action_probs

    cfg = ppo_config("fast", total_timesteps=64 * 16, level_pool=64, curriculum="exact-plr", buffer_size=64)
    trainer = make_train(tiny, cfg)
    ts, _ = jax.jit(lambda t: trainer.advance(t, 1))(jax.jit(trainer.init)(jax.random.key(7)))
    buf = ts.curriculum.buffer
    n = int(buf.size)
    levels = jax.tree_util.tree_map(lambda x: x[:n], buf.levels)
    tab = tabularize_levels(tiny.spec, levels)
    net = eqx.combine(ts.params, trainer.static)
    probs = np.asarray(system_action_probs(tiny.spec, levels, lambda obs: action_probs(net, obs)), np.float64)
    w = tiny.base_objective.vector(tiny.feature_names)
    gamma = tiny.spec.gamma
    for i in range(n):
        ns = np.asarray(tab.next_state[i])
        reward = np.asarray(tab.features[i]) @ w  # [S, A]
        s0 = int(tab.start[i])
        dist, frontier = {s0: 0}, [s0]
        while frontier and not any((reward[s] > 0).any() for s in frontier):
            nxt = []
            for s in frontier:
                for t in ns[s]:
                    if int(t) not in dist:
                        dist[int(t)] = dist[s] + 1
                        nxt.append(int(t))
            frontier = nxt
        d = 1 + min(dist[s] for s in frontier if (reward[s] > 0).any())
        v_star = gamma ** (d - 1)
        p = np.zeros((ns.shape[0], ns.shape[0]))
        np.add.at(p, (np.repeat(np.arange(ns.shape[0]), ns.shape[1]), ns.ravel()), probs[i].ravel())
        v_pi = np.linalg.solve(np.eye(ns.shape[0]) - gamma * p, (probs[i] * reward).sum(1))[s0]
        assert float(buf.scores[i]) == pytest.approx(v_star - v_pi, abs=5e-5), i
