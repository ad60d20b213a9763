"""`mesascope probe RUN_DIR`: activations of every layer, probe targets from the exact solver, the table."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from mesascope.cli import main
from mesascope.experiments.inside import goal_vector, probe_targets
from mesascope.experiments.run import AuditConfig, run
from mesascope.measures.distances import reachable_states
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.solve.dp import value_iteration
from mesascope.systems.policy import (
    NetworkConfig,
    action_probs,
    layer_activations,
    layer_names,
    make_actor_critic,
    steered_action_probs,
)

TINY_TRAIN = {"total_timesteps": 2 * 32 * 32, "num_envs": 32, "num_steps": 32, "level_pool": 64}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_layer_activations_end_in_the_policy_logits(kind):
    spec = get_scenario("cheese-corner-v0").spec
    model = make_actor_critic(jax.random.key(0), spec.obs_shape, spec.n_actions, NetworkConfig(kind=kind, hidden=16, channels=(4,)))
    obs = jax.random.uniform(jax.random.key(1), (3, *spec.obs_shape))
    acts = layer_activations(model, obs)
    assert tuple(acts) == layer_names(model)  # in layer order
    assert acts["input"].shape == (3, int(np.prod(spec.obs_shape))) and acts["dense2"].shape == (3, 16)
    np.testing.assert_allclose(jax.nn.softmax(acts["logits"], -1), action_probs(model, obs), rtol=1e-6)


def test_targets_are_the_objects_cells_and_the_goals_optimal_actions():
    sc = get_scenario("cheese-corner-v0")
    levels = sc.sample_levels(jax.random.key(4), 6, "deploy")
    tab = tabularize_levels(sc.spec, levels)
    live = np.asarray(jax.vmap(reachable_states)(tab)) & ~np.asarray(tab.terminal)
    targets = probe_targets(sc, levels, tab, live)
    assert set(targets) == {"cell of cheese", "cell of corner", "next action for cheese", "next action for corner"}
    level_of = np.nonzero(live)[0]
    cheese, per_level = targets["cell of cheese"]
    assert per_level and cheese.sum(1).tolist() == [1] * len(level_of)
    pos = np.asarray(levels.obj_pos[:, 0])
    np.testing.assert_array_equal(cheese.argmax(1), (pos[:, 0] * sc.spec.width + pos[:, 1])[level_of])
    # The cheese's optimal actions, against value iteration of the cheese reward on each level.
    actions, per_level = targets["next action for cheese"]
    assert not per_level
    names, weights = sc.weight_matrix()
    w = weights[names.index("cheese")]
    expected = []
    for i in range(6):
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], tab)
        q = np.asarray(value_iteration(one.next_state, one.features @ w, sc.spec.gamma).q)
        expected.append(q >= q.max(1, keepdims=True) - 1e-6)
    np.testing.assert_array_equal(actions, np.concatenate(expected)[live.reshape(-1)])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run("cheese-corner-v0", seeds=2, out=out, audit=AuditConfig(n_train=8, n_deploy=8), overrides=TINY_TRAIN,
        scenario_params={"grid_size": 5, "maze_sizes": (5,)})
    return out


def test_probe_command_writes_every_layer_split_and_seed(tiny_run, capsys):
    assert main(["probe", str(tiny_run), "--levels", "8", "--folds", "2"]) == 0
    assert "linear probes" in capsys.readouterr().out
    result = json.loads((tiny_run / "inside" / "probes.json").read_text())
    assert result["layers"] == ["input", "dense1", "dense2", "logits"]
    for split in ("train", "deploy"):
        block = result["splits"][split]
        assert set(block["seeds"]) == {"0", "1"} and block["states"] > 8
        for per_target in block["seeds"].values():
            for target in block["targets"]:
                for score in per_target[target].values():
                    assert 0.0 <= score["shuffled"] <= 1.0 and 0.0 <= score["accuracy"] <= 1.0
    # One maze size: the corner is the same cell on every level, which any probe (and a constant) gets right.
    corner = result["splits"]["deploy"]["seeds"]["0"]["cell of corner"]["input"]
    assert corner["majority"] == 1.0 and corner["accuracy"] == 1.0
    # Same run, same options: the same file.
    first = (tiny_run / "inside" / "probes.json").read_text()
    assert main(["probe", str(tiny_run), "--levels", "8", "--folds", "2"]) == 0
    assert (tiny_run / "inside" / "probes.json").read_text() == first


@pytest.mark.parametrize("argv,needle", [
    (["--folds", "1"], "--folds in [2, levels]"),
    (["--ridge", "0"], "--ridge must be positive"),
])
def test_bad_options_are_one_error_line(tiny_run, argv, needle, capsys):
    assert main(["probe", str(tiny_run), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err, err


# -- steering ------------------------------------------------------------------------------------------------


def test_a_zero_edit_is_the_policy_and_a_logit_edit_shifts_the_logits():
    spec = get_scenario("cheese-corner-v0").spec
    model = make_actor_critic(jax.random.key(0), spec.obs_shape, spec.n_actions, NetworkConfig(hidden=16))
    obs = jax.random.uniform(jax.random.key(1), (5, *spec.obs_shape))
    np.testing.assert_allclose(steered_action_probs(model, obs, "dense1", np.zeros(16, np.float32)), action_probs(model, obs),
                               rtol=1e-6)
    delta = np.array([1.0, 0.0, -2.0, 0.5], np.float32)
    logits = layer_activations(model, obs)["logits"]
    np.testing.assert_allclose(steered_action_probs(model, obs, "logits", delta), jax.nn.softmax(logits + delta, -1),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="unknown layer"):
        steered_action_probs(model, obs, "dense9", delta)


def test_the_input_cheese_vector_lives_in_the_cheese_channel_only():
    sc = get_scenario("cheese-corner-v0")
    spec = sc.spec
    levels = sc.sample_levels(jax.random.key(2), 8, "deploy")
    model = make_actor_critic(jax.random.key(0), spec.obs_shape, spec.n_actions, NetworkConfig(hidden=16))
    vector = goal_vector(lambda o: layer_activations(model, jax.numpy.asarray(o)), sc, levels, "input", "cheese")
    channels = vector.reshape(spec.obs_shape)
    assert np.abs(channels[..., 0]).max() == 0.0, "walls do not change when the cheese is removed"
    assert channels[..., 1].sum() > 0.0, "the cheese channel carries the whole difference"


def test_steering_with_a_zero_coefficient_changes_nothing_and_matches_the_audit(tiny_run, capsys):
    assert main(["steer", str(tiny_run), "--layer", "dense1", "--object", "cheese", "--coef", "0", "--levels", "8",
                 "--vector-levels", "4"]) == 0
    assert "steering" in capsys.readouterr().out
    result = json.loads((tiny_run / "inside" / "steer-cheese-dense1-0.json").read_text())
    audit = json.loads((tiny_run / "audit.json").read_text())
    for seed, entry in zip(("0", "1"), audit["systems"], strict=True):
        r = result["seeds"][seed]
        assert r["unedited"] == r["steered"]
        for goal, p in entry["first_reached"]["deploy"].items():
            assert r["unedited"]["first_reached"][goal] == pytest.approx(p, abs=1e-5), goal


@pytest.mark.parametrize("argv,needle", [
    (["--layer", "dense9", "--object", "cheese"], "--layer 'dense9'"),
    (["--layer", "dense1", "--object", "coin"], "--object 'coin'"),
])
def test_bad_steering_options_are_one_error_line(tiny_run, argv, needle, capsys):
    assert main(["steer", str(tiny_run), *argv, "--levels", "4"]) == 2
    assert needle in capsys.readouterr().err


def test_retargeting_to_the_corner_square_measures_the_corner_first(tiny_run, capsys):
    # On 5x5 mazes the corner is square (1, 3): entering it *is* reaching the corner, so the square comes
    # first exactly when the corner does (ties count for both), level by level.
    assert main(["steer", str(tiny_run), "--layer", "dense2", "--object", "cheese", "--coef", "0", "--square", "1,3",
                 "--levels", "8", "--vector-levels", "4"]) == 0
    assert "written to" in capsys.readouterr().out
    result = json.loads((tiny_run / "inside" / "steer-cheese-dense2-0-at-1-3.json").read_text())
    assert result["square"] == [1, 3] and result["square_levels"] == 8
    audit = json.loads((tiny_run / "audit.json").read_text())
    for seed, entry in zip(("0", "1"), audit["systems"], strict=True):
        r = result["seeds"][seed]
        assert r["unedited"] == r["steered"]
        assert r["unedited"]["square_first"] == pytest.approx(entry["first_reached"]["deploy"]["corner"], abs=1e-5)


@pytest.mark.parametrize("square,needle", [("0,0", "is a wall or the start on every level"), ("9,1", "outside the 5x5 grid"),
                                           ("1;3", "--square takes ROW,COL")])
def test_bad_squares_are_one_error_line(tiny_run, square, needle, capsys):
    assert main(["steer", str(tiny_run), "--layer", "dense1", "--object", "cheese", "--square", square, "--levels", "4",
                 "--vector-levels", "4"]) == 2
    assert needle in capsys.readouterr().err


def test_the_report_shows_what_probe_and_steer_wrote(tiny_run, capsys):
    from mesascope.report.run_report import build_run_report

    assert main(["probe", str(tiny_run), "--levels", "8", "--folds", "2"]) == 0
    assert main(["steer", str(tiny_run), "--layer", "dense1", "--object", "cheese", "--coef", "-1", "--levels", "8",
                 "--vector-levels", "4"]) == 0
    html = build_run_report(tiny_run)
    assert '<section id="inside">' in html and '<a href="#inside">' in html
    assert "Linear probes (8 levels per split, 2 folds over levels)" in html
    assert "Steering: -1.0 x the cheese vector at dense1" in html
    # A damaged file costs the section its tables, never the report.
    (tiny_run / "inside" / "probes.json").write_text("{not json")
    html = build_run_report(tiny_run)
    assert "inside/ could not be read" in html and '<section id="verdicts">' in html
    (tiny_run / "inside" / "probes.json").unlink()


# -- the ground-truth check: probes on an explicit mesa-optimizer whose objective is known ----------------------

@pytest.fixture(scope="module")
def mesa_run(tmp_path_factory):
    """A cheese-corner-mesa run whose saved objectives are then set by hand: seed 0 wants the cheese only,
    seed 1 the corner square only (read off as "up" and "right" weights would be; here the corner region)."""
    out = tmp_path_factory.mktemp("mesa")
    run("cheese-corner-mesa-v0", seeds=2, out=out, audit=AuditConfig(n_train=8, n_deploy=8),
        overrides={"n_levels": 4, "steps": 2}, scenario_params={"grid_size": 5, "maze_sizes": (5,)})
    from mesascope.systems.mesa import mesa_feature_names

    names = mesa_feature_names(get_scenario("cheese-corner-mesa-v0", grid_size=5, maze_sizes=(5,)).spec)
    for seed, wanted in ((0, "cheese"), (1, "up")):
        theta = np.zeros(len(names), np.float32)
        theta[names.index(wanted)] = 1.0
        np.save(out / "systems" / f"seed-{seed}.npy", theta)
    return out, names


def test_probes_on_a_planner_recover_its_known_objective(mesa_run, capsys):
    out, _ = mesa_run
    assert main(["probe", str(out), "--levels", "16", "--folds", "4"]) == 0
    result = json.loads((out / "inside" / "probes.json").read_text())
    assert result["layers"] == ["features", "mesa reward", "planned q"] and result["optimizer"] == "mesa-gradient"
    seeds = result["splits"]["deploy"]["seeds"]

    def gain(seed, goal):  # held-out accuracy above the best constant guess
        score = seeds[seed][f"next action for {goal}"]["planned q"]
        return score["accuracy"] - score["majority"]

    cheese = seeds["0"]["next action for cheese"]["planned q"]
    # The planner that wants the cheese plans the cheese's optimal actions: its Q decodes them far above
    # both baselines; the cheese is worth far less to decode from the planner that wants to go up.
    assert cheese["accuracy"] > 0.9 and cheese["accuracy"] > cheese["shuffled"] + 0.3
    assert gain("0", "cheese") > 0.5 and gain("0", "cheese") > gain("1", "cheese") + 0.2
    assert gain("0", "cheese") > gain("0", "corner") + 0.3
    assert "planned q" in capsys.readouterr().out
