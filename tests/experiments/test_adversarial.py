"""`mesascope adversarial RUN_DIR`: the search climbs exact intended regret, fine-tuning starts from the
trained network, and the comparison is audited on the same held-out levels."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import numpy as np
import pytest

from mesascope.cli import main
from mesascope.experiments.adversarial import AdversarialConfig, intended_scores, search_levels
from mesascope.experiments.run import AuditConfig, run
from mesascope.measures.scores import score_levels, system_action_probs, tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.scenarios.conformance import _check_reachable, _check_valid
from mesascope.systems.policy import NetworkConfig, action_probs, make_actor_critic

TINY = {"grid_size": 5, "maze_sizes": [5]}
TINY_TRAIN = {"total_timesteps": 2 * 32 * 32, "num_envs": 32, "num_steps": 32, "level_pool": 64}


def _policy(seed=0):
    sc = get_scenario("cheese-corner-v0", **TINY)
    net = make_actor_critic(jax.random.key(seed), sc.spec.obs_shape, sc.spec.n_actions, NetworkConfig(hidden=16))
    return sc, lambda obs: action_probs(net, obs)


def test_intended_scores_are_the_audits():
    sc, policy = _policy()
    levels = sc.sample_levels(jax.random.key(3), 16, "deploy")
    regret, j = intended_scores(sc, levels, policy)
    tab = tabularize_levels(sc.spec, levels)
    names, weights = sc.weight_matrix()
    k = names.index("intended")
    scores = score_levels(tab, system_action_probs(sc.spec, levels, policy), weights[k:k + 1], sc.spec.gamma,
                          reach=sc.reach_mask()[k:k + 1])
    np.testing.assert_allclose(regret, np.asarray(scores.v_optimal - scores.v_policy)[:, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(j, np.asarray(scores.j)[:, 0], rtol=1e-6, atol=1e-7)


def test_the_search_never_lowers_a_levels_regret_and_keeps_levels_valid():
    sc, policy = _policy()
    levels, start, end = search_levels(sc, policy, AdversarialConfig(levels=32, rounds=6), jax.random.key(0))
    assert (end >= start - 1e-7).all() and end.mean() > start.mean()
    again, _ = intended_scores(sc, levels, policy)
    np.testing.assert_allclose(again, end, atol=1e-6)  # the kept levels are the ones whose regret is reported
    assert _check_valid(sc.spec, levels)[0]
    assert _check_reachable(sc, tabularize_levels(sc.spec, levels))[0]
    levels2, _, end2 = search_levels(sc, policy, AdversarialConfig(levels=32, rounds=6), jax.random.key(0))
    np.testing.assert_array_equal(end, end2)  # same key, same search


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adv") / "run"
    run("cheese-corner-v0", seeds=2, out=out, audit=AuditConfig(n_train=8, n_deploy=8), overrides=TINY_TRAIN,
        scenario_params=TINY)
    return out


def test_adversarial_command_writes_a_compared_run(tiny_run, tmp_path):
    out = tmp_path / "adv"
    assert main(["adversarial", str(tiny_run), "--out", str(out), "--levels", "8", "--rounds", "2",
                 "--steps", "1024", "--db", str(tmp_path / "r.duckdb")]) == 0
    result = json.loads((out / "adversarial.json").read_text())
    before = json.loads((tiny_run / "audit.json").read_text())
    after = json.loads((out / "audit.json").read_text())
    assert [r["seed"] for r in result["seeds"]] == before["seeds"] == after["seeds"]
    assert after["audit"] == before["audit"]  # the same held-out levels
    for i, row in enumerate(result["seeds"]):
        assert row["before"]["j_intended_deploy"] == before["systems"][i]["scores"]["deploy"]["intended"]
        assert row["after"]["j_intended_deploy"] == after["systems"][i]["scores"]["deploy"]["intended"]
        assert row["search"]["regret_end"] >= row["search"]["regret_start"] - 1e-7
    meta = json.loads((out / "run.json").read_text())
    assert meta["adversarial"]["levels"] == 8 and meta["config"]["level_pool"] == 8
    html = (out / "report.html").read_text()
    assert 'id="adversarial-table"' in html and "Before and after" in html


def test_fine_tuning_starts_from_the_trained_network(tiny_run, tmp_path):
    from mesascope.experiments.adversarial import adversarial_run
    from mesascope.experiments.train import get_trainer, load_networks

    out = tmp_path / "adv0"
    result = adversarial_run(tiny_run, out, AdversarialConfig(levels=4, rounds=1, steps=1))
    meta = json.loads((tiny_run / "run.json").read_text())
    sc = get_scenario("cheese-corner-v0", **TINY)
    config = get_trainer("ppo").from_json(meta["config"])
    old = load_networks(sc, config, meta["seeds"], tiny_run)
    new = load_networks(sc, config, meta["seeds"], out)
    # One update of PPO from the trained parameters moves them a little, not to a fresh network's.
    for a, b in zip(old, new):
        fa, fb = (np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(eqx.filter(n, eqx.is_array))]) for n in (a, b))
        assert np.abs(fa - fb).max() < 0.1 * np.abs(fa).max()
    assert len(result["seeds"]) == 2


@pytest.mark.parametrize("case", ["no-audit", "no-edits", "out-exists"])
def test_bad_runs_are_clear_errors(tiny_run, tmp_path, capsys, case):
    target = tiny_run
    if case == "no-audit":
        target = tmp_path / "copy"
        target.mkdir()
        (target / "run.json").write_text((tiny_run / "run.json").read_text())
        needle = "has no audit.json"
    elif case == "no-edits":
        target = tmp_path / "rd"
        target.mkdir()
        meta = json.loads((tiny_run / "run.json").read_text())
        (target / "run.json").write_text(json.dumps({**meta, "scenario": "red-door-v0", "scenario_params": {}}))
        (target / "audit.json").write_text("{}")
        needle = "declares no level edits"
    else:
        (tmp_path / "adv" / "run.json").parent.mkdir()
        (tmp_path / "adv" / "run.json").write_text("{}")
        needle = "already holds a run"
    code = main(["adversarial", str(target), "--out", str(tmp_path / "adv"), "--levels", "4", "--rounds", "1", "--steps", "64"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
