"""Stop when competent (issue 17): the exact J_base check, the parameters each seed keeps, determinism."""

from __future__ import annotations

import dataclasses
import json

import equinox as eqx
import jax
import numpy as np
import pytest

from mesascope.experiments.audit import AuditConfig
from mesascope.experiments.run import load_run, run
from mesascope.experiments.train import (
    PPO_SETTINGS,
    TRAINERS,
    _check_chunk,
    competence_sample,
    j_base_of,
    make_competence_check,
    train_systems,
)
from mesascope.optimizers.ppo import PRESETS, make_train, ppo_config
from mesascope.scenarios import get_scenario
from mesascope.systems.policy import make_actor_critic

TINY_PARAMS = {"grid_size": 5, "maze_sizes": (5,)}
TINY_TRAIN = {"total_timesteps": 8 * 32 * 32, "num_envs": 32, "num_steps": 32, "level_pool": 64}
CHECK = {"competence_every": 2, "competence_levels": 32}
EASY = 0.05
"""A target every seed passes at the first check here (an untrained network is near uniform, J ~ 0; two
updates on 5x5 mazes bring it to about 0.37)."""

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def scenario():
    return get_scenario("cheese-corner-v0", **TINY_PARAMS)


def _config(**settings):
    return ppo_config("fast", **TINY_TRAIN, **CHECK, **settings)


def _params_after(scenario, config, seeds, n_updates):
    """Every seed's parameters after `n_updates` updates, run by hand in the check's chunks."""
    trainer = make_train(scenario, config)
    chunk = _check_chunk(config.num_updates, config.competence_every)
    state = jax.jit(jax.vmap(trainer.init))(jax.numpy.stack([jax.random.key(s) for s in seeds]))
    advance = jax.jit(jax.vmap(lambda ts: trainer.advance(ts, chunk)))
    for _ in range(n_updates // chunk):
        state, _ = advance(state)
    return state.params


def _equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _seed(params, i):
    return jax.tree_util.tree_map(lambda x: x[i], params)


@pytest.fixture(scope="module")
def easy(scenario):
    return train_systems(scenario, _config(stop_at_j_base=EASY), [0, 1])


def test_off_by_default_and_each_setting_reaches_the_config():
    for preset in PRESETS.values():
        assert preset.stop_at_j_base == 0.0
    declared = {p.name: p.default for p in PPO_SETTINGS}
    assert declared["stop_at_j_base"] == 0.0
    config = TRAINERS["ppo"].config("fast", {"stop_at_j_base": "0.9", "competence_every": "32", "competence_levels": "128"})
    assert (config.stop_at_j_base, config.competence_every, config.competence_levels) == (0.9, 32, 128)
    assert _check_chunk(976, 20) == 4 and _check_chunk(976, 16) == 16 and _check_chunk(977, 20) == 1 and _check_chunk(8, 100) == 8


def test_every_seed_stops_at_the_first_check_with_the_parameters_of_that_check(scenario, easy):
    params, static, metrics = easy
    config = _config(stop_at_j_base=EASY)
    assert metrics["competent_at_update"].tolist() == [2, 2]
    assert metrics["competent_at_step"].tolist() == [2 * 32 * 32] * 2
    assert metrics["competence_checks"].tolist() == [2]
    assert metrics["episode_return"].shape == (2, 2)  # training ended at the check, not after 8 updates
    assert _equal(params, _params_after(scenario, config, [0, 1], 2))
    # The recorded J_base is that of the saved parameters.
    check = make_competence_check(scenario, competence_sample(scenario, config.competence_levels))
    j = j_base_of(check, static, params)
    assert (j >= EASY).all()
    np.testing.assert_array_equal(metrics["competence_j_base"][:, -1], j.astype(np.float32))
    assert np.isnan(metrics["competence_j_base"][:, 0]).all()  # no check before update 2


def test_a_seed_that_passed_keeps_its_parameters_while_the_other_trains_on(scenario, easy):
    j_first = easy[2]["competence_j_base"][:, 1]
    assert j_first[0] != j_first[1]
    target = float(j_first.mean())  # between the two seeds: exactly one passes at the first check
    config = _config(stop_at_j_base=target)
    params, _, metrics = train_systems(scenario, config, [0, 1])
    first, other = (0, 1) if j_first[0] >= target else (1, 0)
    at = metrics["competent_at_update"]
    assert at[first] == 2 and at[other] != 2
    end = metrics["episode_return"].shape[1]
    assert end == (at[other] if at[other] > 0 else config.num_updates)
    assert _equal(_seed(params, first), _seed(_params_after(scenario, config, [0, 1], 2), first))
    assert _equal(_seed(params, other), _seed(_params_after(scenario, config, [0, 1], end), other))
    # The passed seed's curves stop at its check; the other's go on.
    assert np.isnan(metrics["episode_return"][first, 2:]).all() and np.isfinite(metrics["episode_return"][other]).all()


def test_same_seeds_twice_give_identical_results(scenario, easy):
    params, _, metrics = train_systems(scenario, _config(stop_at_j_base=EASY), [0, 1])
    assert _equal(params, easy[0])
    assert metrics.keys() == easy[2].keys()
    for name in metrics:
        np.testing.assert_array_equal(metrics[name], easy[2][name])


def test_the_check_equals_the_audits_j_base_and_the_run_records_it(tmp_path, scenario):
    out = tmp_path / "run"
    audit = AuditConfig(n_train=16, n_deploy=8)
    result = run("cheese-corner-v0", seeds=2, out=out, audit=audit, overrides={**TINY_TRAIN, **CHECK, "stop_at_j_base": 0.99},
                 scenario_params=TINY_PARAMS)
    meta, loaded = load_run(out)
    assert meta["config"]["stop_at_j_base"] == 0.99 and meta["config"]["competence_every"] == 2
    with np.load(out / "training.npz") as data:
        assert {"competence_checks", "competence_j_base", "competent_at_update", "competent_at_step"} <= set(data.files)
        assert data["competent_at_step"].shape == (2,)
    # Two implementations of J_base on the audit's own training levels and the saved systems: the check's and the audit's.
    config = TRAINERS["ppo"].from_json(meta["config"])
    template = make_actor_critic(jax.random.key(0), loaded.spec.obs_shape, loaded.spec.n_actions, config.network)
    static = eqx.partition(template, eqx.is_array)[1]
    saved = [eqx.partition(eqx.tree_deserialise_leaves(out / "systems" / f"seed-{s}.eqx", template), eqx.is_array)[0] for s in (0, 1)]
    params = jax.tree_util.tree_map(lambda *xs: jax.numpy.stack(xs), *saved)
    levels = loaded.sample_levels(jax.random.split(jax.random.key(audit.seed))[0], audit.n_train, "train")
    j = j_base_of(make_competence_check(loaded, levels), static, params)
    audited = [s["scores"]["train"]["base"] for s in json.loads((out / "audit.json").read_text())["systems"]]
    np.testing.assert_allclose(j, audited, atol=1e-5)
    assert result["seeds"] == [0, 1]


def test_a_config_without_the_new_fields_still_loads():
    data = dataclasses.asdict(PRESETS["fast"])
    for name in ("stop_at_j_base", "competence_every", "competence_levels"):
        data.pop(name)
    assert TRAINERS["ppo"].from_json(json.loads(json.dumps(data))).stop_at_j_base == 0.0
