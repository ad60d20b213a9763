"""`mesascope audit-policy`: outside policies (callables, ONNX, stable-baselines3) audited exactly.

The examples are real outside agents: `examples/outside_agent.py`, a single-file JAX PPO agent trained
through the Gymnasium environment, and (slow, optional extra `bench`) stable-baselines3 PPO. Bad input is
one `error:` line, exit 2, and nothing written.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from mesascope.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--param", "grid_size=5", "--param", "maze_sizes=[5]", "--audit-levels", "8"]
TINY_PARAMS = {"grid_size": 5, "maze_sizes": (5,)}
OBS_SHAPE = (9, 9, 2)  # cheese-corner at grid_size 5: an egocentric view of side 2 * 5 - 1, walls and cheese

AGENTS = '''
import numpy as np

def uniform(obs):
    return np.full((obs.shape[0], 4), 0.25, np.float32)

def corner(obs):  # up or left, whatever it sees
    p = np.zeros((obs.shape[0], 4), np.float32)
    p[:, 0] = p[:, 3] = 0.5
    return p

def logits(obs):
    return np.log(corner(obs) + 1e-3) + 7.0

def three_actions(obs):
    return np.full((obs.shape[0], 3), 1 / 3)

def transposed(obs):
    return np.full((4, obs.shape[0]), 0.25)

def wrong_obs(obs):  # built for another grid: a 7 x 7 view
    return np.full((obs.reshape(obs.shape[0], 7, 7, -1).shape[0], 4), 0.25)

def nan_at_41(obs):  # the 42nd observation of the first full batch: train level 1, state 15
    p = uniform(obs)
    if obs.shape[0] > 41:
        p[41, 2] = np.nan
    return p

def sums_to_2(obs):
    return np.full((obs.shape[0], 4), 0.5)

def crashes(obs):
    raise RuntimeError("the agent is broken")

def not_an_array(obs):
    return {"probs": 1}

NOT_CALLABLE = 3

class Counter:
    rows = 0

    def __call__(self, obs):
        Counter.rows += obs.shape[0]
        return uniform(obs)

count = Counter()
'''


@pytest.fixture()
def agents(tmp_path, monkeypatch):
    """A module of hand-written policies, importable as `agents_<id>:NAME` from the current folder."""
    name = f"agents_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(AGENTS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the examples: a JAX agent trained through Gymnasium --------------------------------------------------


@pytest.fixture(scope="module")
def jax_agent(tmp_path_factory):
    """examples/outside_agent.py copied to a folder, trained briefly there (its parameters saved beside it)."""
    folder = tmp_path_factory.mktemp("jax_agent")
    script = folder / "outside_agent.py"
    shutil.copyfile(REPO / "examples" / "outside_agent.py", script)
    module = _import(script, "outside_agent_under_test")
    params, stats = module.train(2048, scenario_params=TINY_PARAMS, num_envs=8, num_steps=64)
    module.save(params, module.PARAMS_FILE)
    assert stats["steps"] == 2048 and np.isfinite(stats["final_return"])
    return script, module


@pytest.mark.timeout(300)
def test_jax_agent_audited_by_the_cli_matches_the_same_function_audited_in_process(jax_agent, tmp_path, capsys):
    from mesascope.adapters import policy_from_callable
    from mesascope.experiments.audit import AuditConfig, audit_systems
    from mesascope.experiments.store import Store
    from mesascope.experiments.train import TrainedSystem
    from mesascope.measures.scores import system_action_probs
    from mesascope.properties import Thresholds
    from mesascope.scenarios import get_scenario

    script, module = jax_agent
    out, db = tmp_path / "run", tmp_path / "runs.duckdb"
    code, stdout, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"{script}:policy", *TINY,
                             "--out", str(out), "--db", str(db))
    assert code == 0, err
    assert "cheese-corner-v0 · preset outside" in stdout
    meta = json.loads((out / "run.json").read_text())
    assert (meta["kind"], meta["optimizer"], meta["preset"], meta["seeds"]) == ("gridworld", "outside", "outside", [0])
    assert meta["policy"] == f"{script}:policy" and meta["scenario_params"] == {"grid_size": 5, "maze_sizes": [5]}
    assert meta["config"]["format"] == "callable" and meta["config"]["callable"] == f"{script.resolve()}:policy"
    assert meta["thresholds"]["tau"] == Thresholds().tau
    assert json.loads((out / "systems" / "seed-0.json").read_text()) == meta["config"]
    for name in ("audit.json", "report.html", "pictures/seed-0.png"):
        assert (out / name).exists(), name
    audited = json.loads((out / "audit.json").read_text())
    assert audited["optimizer"] == "outside" and audited["finding"]["checks"]

    # The same function, audited in-process through the adapter's `policy_from_callable`.
    scenario = get_scenario("cheese-corner-v0", **TINY_PARAMS)
    wrapped = policy_from_callable(module.policy)
    system = TrainedSystem(0, lambda levels, tab: system_action_probs(scenario.spec, levels, wrapped))
    found = audit_systems(scenario, [system], AuditConfig(n_train=8, n_deploy=8), Thresholds())
    mine, theirs = audited["systems"][0], found.systems[0]
    for split in ("train", "deploy"):
        for objective, j in theirs["scores"][split].items():
            assert mine["scores"][split][objective] == pytest.approx(j, abs=1e-4), (split, objective)
        for goal, p in theirs["first_reached"][split].items():
            assert mine["first_reached"][split][goal] == pytest.approx(p, abs=1e-4), (split, goal)
    assert {k: v["label"] for k, v in mine["verdicts"].items()} == {k: v["label"] for k, v in theirs["verdicts"].items()}

    cols, rows = Store(db).query("SELECT optimizer, preset, status, seeds FROM runs")
    assert rows == [("outside", "outside", "complete", [0])]

    # `mesascope audit RUN_DIR` reloads the callable from run.json and audits it again.
    code, _, err = _run(capsys, "audit", str(out), "--audit-levels", "8", "--db", str(db))
    assert code == 0, err
    again = json.loads((out / "audit.json").read_text())["systems"][0]
    assert again["scores"] == mine["scores"]


def test_a_checked_policy_runs_once_per_audited_state(agents, tmp_path, capsys):
    from mesascope.scenarios import get_scenario

    module = importlib.import_module(agents)
    module.Counter.rows = 0
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"{agents}:count", *TINY,
                        "--out", str(tmp_path / "run"), "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    n_states = get_scenario("cheese-corner-v0", **TINY_PARAMS).spec.n_states
    # The check before writing (3 probe observations, then every state of both splits) and the audit
    # share one evaluation: the audit samples exactly the levels `audited_levels` checked.
    assert module.Counter.rows == 3 + 2 * 8 * n_states


def test_logits_need_from_logits(agents, tmp_path, capsys):
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"{agents}:logits", *TINY,
                        "--out", str(tmp_path / "bad"))
    assert code == 2 and "pass --from-logits" in err
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"{agents}:logits", "--from-logits",
                        *TINY, "--out", str(tmp_path / "run"), "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["config"]["from_logits"] is True


# -- bad input: one error line, exit 2, nothing written ---------------------------------------------------


BAD = [
    ("no_such_module_mesascope:policy", "cannot import 'no_such_module_mesascope'"),
    ("{agents}:missing", "has no attribute 'missing'; its callables: Counter, corner,"),
    ("{agents}:NOT_CALLABLE", "NOT_CALLABLE is of type int, not a callable"),
    ("{agents}", "names no policy"),
    ("missing.zip", "missing.zip: no such file"),
    ("{agents}.py", "a .py file is not a policy"),
    ("notes.txt", "a .txt file is not a policy"),
    ("{agents}:three_actions", "returned shape [3, 3] for observations [3, 9, 9, 2]; expected [B, A] = [3, 4]"),
    ("{agents}:transposed", "returned shape [4, 3] for observations [3, 9, 9, 2]"),
    ("{agents}:wrong_obs", "raised ValueError: cannot reshape"),
    ("{agents}:crashes", "raised RuntimeError: the agent is broken when called on observations float32 [3, 9, 9, 2]"),
    ("{agents}:not_an_array", "that is not an array"),
    ("{agents}:nan_at_41", "non-finite values [0.25, 0.25, nan, 0.25] at train level 1, state 15 (agent at row"),
    ("{agents}:sums_to_2", "action probabilities at train level 0, state 0 (agent at row 0, column 0) are "
                           "[0.5, 0.5, 0.5, 0.5] (sum 2): not a distribution"),
]


@pytest.mark.parametrize("policy,needle", BAD, ids=[b[0].replace("{agents}", "agents") for b in BAD])
def test_bad_policies_are_one_error_line_and_write_nothing(agents, policy, needle, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a policy\n")
    out, db = tmp_path / "runs" / "bad", tmp_path / "runs" / "runs.duckdb"
    code, stdout, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", policy.format(agents=agents), *TINY,
                             "--out", str(out), "--db", str(db))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "runs").exists(), "nothing may be written"


def test_files_that_are_not_policies(agents, tmp_path, capsys):
    for name in ("fake.zip", "fake.onnx"):
        (tmp_path / name).write_text("not a policy\n")
        code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", name, *TINY, "--out",
                            str(tmp_path / "runs" / "bad"))
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert ("is not a" in err) or ("pip install 'mesascope[" in err), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("fmt,module,extra", [("zip", "stable_baselines3", "bench"), ("onnx", "onnxruntime", "onnx")])
def test_a_missing_optional_extra_says_which_to_install(fmt, module, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"agent.{fmt}").write_bytes(b"PK")
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"agent.{fmt}", *TINY)
    assert code == 2 and f"pip install 'mesascope[{extra}]'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_study_has_no_levels_to_audit_a_policy_on(agents, capsys):
    code, _, err = _run(capsys, "audit-policy", "cancer-shift-v0", "--policy", f"{agents}:uniform")
    assert code == 2 and "choose a gridworld scenario" in err


def test_default_out_names_the_policy():
    from mesascope.experiments.outside import default_out

    assert default_out("cheese-corner-v0", "pkg.agents:probs") == Path("runs/cheese-corner-v0-outside-probs")
    assert default_out("cheese-corner-v0", "models/ppo agent.zip") == Path("runs/cheese-corner-v0-outside-ppo-agent")


# -- ONNX (optional extra `onnx`) --------------------------------------------------------------------------


def _onnx_mlp(path: Path, weights: np.ndarray, bias: np.ndarray) -> None:
    """A softmax-linear policy as ONNX: Flatten -> MatMul -> Add -> Softmax, batch dimension symbolic."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["obs"], ["x"], axis=1), helper.make_node("MatMul", ["x", "w"], ["z"]),
         helper.make_node("Add", ["z", "b"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", *OBS_SHAPE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.timeout(300)
def test_an_onnx_policy_is_audited_from_its_copy_in_the_run_folder(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX policies need the optional extra `onnx`")
    from mesascope.experiments.outside import audited_levels
    from mesascope.experiments.run import AuditConfig, load_systems
    from mesascope.levels.tabular import observe_all
    from mesascope.scenarios import get_scenario

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(int(np.prod(OBS_SHAPE)), 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    model = tmp_path / "agent.onnx"
    _onnx_mlp(model, weights, bias)
    out = tmp_path / "run"
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", str(model), *TINY, "--out", str(out),
                        "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["format"] == "onnx" and meta["config"]["file"] == "systems/seed-0.onnx"
    assert (out / "systems" / "seed-0.onnx").read_bytes() == model.read_bytes()
    model.unlink()  # the run folder keeps its own copy

    _, scenario, _, systems = load_systems(out)
    level = audited_levels(scenario, AuditConfig(n_train=8, n_deploy=8))["deploy"]
    probs = np.asarray(systems[0].probs(level, None))  # [L, S, A]
    obs = np.asarray(jax.vmap(lambda lv: observe_all(scenario.spec, lv))(level))
    logits = obs.reshape(obs.shape[0], obs.shape[1], -1) @ weights + bias
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(-1, keepdims=True), atol=1e-5)
    assert get_scenario("cheese-corner-v0", **TINY_PARAMS).spec.obs_shape == OBS_SHAPE


def test_an_onnx_policy_for_another_grid_is_refused(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX policies need the optional extra `onnx`")
    model = tmp_path / "agent.onnx"
    _onnx_mlp(model, np.zeros((int(np.prod(OBS_SHAPE)), 4), np.float32), np.zeros(4, np.float32))
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", str(model), "--audit-levels", "8",
                        "--out", str(tmp_path / "runs" / "bad"))
    assert code == 2 and "takes observations of shape (9, 9, 2); this scenario observes (13, 13, 2)" in err, err
    assert not (tmp_path / "runs").exists()


# -- stable-baselines3 (optional extra `bench`) ------------------------------------------------------------


def _sb3_env(**params):
    import gymnasium

    from mesascope.adapters import register_gymnasium_envs
    from mesascope.scenarios import get_scenario

    register_gymnasium_envs()
    return gymnasium.make("mesascope/cheese-corner-v0", scenario=get_scenario("cheese-corner-v0", **params))


def test_an_sb3_policy_for_another_grid_is_refused(tmp_path, capsys):
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the optional extra `bench`")
    model = sb3.PPO("MlpPolicy", _sb3_env(**TINY_PARAMS), n_steps=64, batch_size=64, device="cpu", seed=0)
    model.save(tmp_path / "agent.zip")
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", str(tmp_path / "agent.zip"),
                        "--audit-levels", "8", "--out", str(tmp_path / "runs" / "bad"))
    assert code == 2 and "takes observations of shape (9, 9, 2); this scenario observes (13, 13, 2)" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sb3_ppo_trained_through_gymnasium_is_audited(tmp_path, capsys):
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the optional extra `bench`")
    import torch

    from mesascope.experiments.outside import audited_levels
    from mesascope.experiments.run import AuditConfig, load_systems
    from mesascope.levels.tabular import observe_all

    model = sb3.PPO("MlpPolicy", _sb3_env(**TINY_PARAMS), n_steps=256, batch_size=64, device="cpu", seed=0)
    model.learn(total_timesteps=20_000)
    model.save(tmp_path / "ppo.zip")
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", str(tmp_path / "ppo.zip"), *TINY,
                             "--out", str(out), "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    audited = json.loads((out / "audit.json").read_text())
    entry = audited["systems"][0]
    assert entry["scores"]["train"]["base"] > 0.5, "20k steps learn the 5 x 5 training levels"
    assert set(entry["first_reached"]["deploy"]) == {"cheese", "corner", "none"}

    # The audit read exactly SB3's own action distribution on the Gymnasium observations.
    _, scenario, _, systems = load_systems(out)
    level = audited_levels(scenario, AuditConfig(n_train=8, n_deploy=8))["deploy"]
    probs = np.asarray(systems[0].probs(level, None))
    obs = np.asarray(jax.vmap(lambda lv: observe_all(scenario.spec, lv))(level))
    with torch.no_grad():
        flat = torch.as_tensor(obs.reshape((-1,) + obs.shape[2:]))
        expected = model.policy.get_distribution(flat).distribution.probs.numpy().reshape(probs.shape)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    code, _, err = _run(capsys, "audit", str(out), "--audit-levels", "8", "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err


def test_the_layers_of_an_sb3_policy_are_probed(tmp_path, capsys):
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the optional extra `bench`")
    import torch

    from mesascope.scenarios import get_scenario
    from mesascope.systems.outside import parse_policy_spec, sb3_layer_activations

    model = sb3.PPO("MlpPolicy", _sb3_env(**TINY_PARAMS), n_steps=64, batch_size=64, device="cpu", seed=0)
    model.save(tmp_path / "agent.zip")
    grid = get_scenario("cheese-corner-v0", **TINY_PARAMS).spec
    names, acts = sb3_layer_activations(parse_policy_spec(str(tmp_path / "agent.zip")), grid)
    assert names[0] == "features_extractor.flatten" and names[-1] == "action_net"
    obs = np.random.default_rng(0).random((5, *grid.obs_shape)).astype(np.float32)
    layers = acts(obs)
    with torch.no_grad():
        probs = model.policy.get_distribution(torch.as_tensor(obs)).distribution.probs.numpy()
    # The action head's output is the policy's logits; the first layer is the flattened observation.
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(layers["action_net"], -1)), probs, atol=1e-6)
    np.testing.assert_allclose(layers["features_extractor.flatten"], obs.reshape(5, -1))

    out = tmp_path / "run"
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", str(tmp_path / "agent.zip"), *TINY,
                        "--out", str(out), "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    code, stdout, err = _run(capsys, "probe", str(out), "--levels", "8", "--folds", "2")
    assert code == 0, err
    result = json.loads((out / "inside" / "probes.json").read_text())
    assert result["layers"] == list(names) and result["optimizer"] == "outside"


def test_a_callable_outside_policy_is_a_black_box_to_probes(agents, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "audit-policy", "cheese-corner-v0", "--policy", f"{agents}:uniform", *TINY, "--out", str(out),
                        "--db", str(tmp_path / "runs.duckdb"))
    assert code == 0, err
    code, _, err = _run(capsys, "probe", str(out), "--levels", "8", "--folds", "2")
    assert code == 2 and "a callable is a black box" in err, err
