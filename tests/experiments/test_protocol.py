"""One scenario protocol, one registry, one run path (issue 13): what every scenario declares, how bad
input is refused before anything is written, and how the harness treats every kind the same way."""

from __future__ import annotations

import json

import pytest

from mesascope.cli import main
from mesascope.experiments.run import load_run, plan_run, rejudge, run
from mesascope.experiments.train import TRAINERS
from mesascope.measures.measurements import Measurements
from mesascope.params import Param
from mesascope.properties import Thresholds
from mesascope.scenarios import Check, Finding, get_scenario, register, scenario_ids
from mesascope.scenarios.base import _REGISTRY
from mesascope.scenarios.study import Study, StudyOutcome, StudySystem
from mesascope.types import MesascopeError


def test_every_scenario_declares_its_kind_parameters_and_finding():
    ids = scenario_ids()
    assert len(ids) >= 25
    for sid in ids:
        sc = get_scenario(sid)
        assert sc.id == sid and sc.kind in ("gridworld", "study")
        assert sc.summary and sc.description and sc.expected_finding
        assert sc.finding is not None and callable(sc.finding.check), sid
        assert (sc.finding.fast or sc.finding.full).seeds >= 1
        assert all(isinstance(p, Param) for p in sc.param_specs)
        assert set(sc.params) == {p.name for p in sc.param_specs}
        if sc.kind == "gridworld":
            assert sc.optimizer in TRAINERS
        else:
            assert "fast" in sc.presets and sc.config("fast", {}) is not None
    assert set(scenario_ids("gridworld")) | set(scenario_ids("study")) == set(ids)


def test_unknown_ids_and_double_registration_say_what_to_do():
    with pytest.raises(MesascopeError, match="Did you mean 'greedy-genes-v0'"):
        get_scenario("greedy-genes-v9")
    with pytest.raises(ValueError, match="registered twice"):
        register("greedy-genes-v0", lambda: None)


def test_no_scenario_module_imports_the_layers_above_it():
    import pathlib

    import mesascope.scenarios as pkg

    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        for layer in ("mesascope.experiments", "mesascope.verdicts", "mesascope.report", "mesascope.cli"):
            assert f"from {layer}" not in text and f"import {layer}" not in text, (path.name, layer)


def _bad_values(p: Param) -> list[str]:
    """A value of the wrong type and, where the parameter has a range, values outside it."""
    wrong = {"int": "abc", "float": "abc", "bool": "maybe", "str": "no-such-choice", "ints": "abc", "floats": "abc"}[p.kind]
    out = [wrong]
    if p.kind in ("int", "float", "ints", "floats") and p.choices is None:
        one = "[{}]" if p.kind in ("ints", "floats") else "{}"
        if p.low is not None:
            out.append(one.format(p.low - 1))
        if p.high is not None:
            out.append(one.format(p.high + 1))
    if p.kind in ("int",) and p.choices is not None:
        out.append(str(max(p.choices) + 1))
    return out


def _cases() -> list[tuple[str, str, str, str]]:
    cases = []
    trainers_seen: set[str] = set()
    for sid in scenario_ids():
        sc = get_scenario(sid)
        for p in sc.param_specs:
            cases += [(sid, "--param", p.name, v) for v in _bad_values(p)]
        settings = sc.settings if sc.kind == "study" else ()
        if sc.kind == "gridworld" and sc.optimizer not in trainers_seen:  # a trainer's settings once
            trainers_seen.add(sc.optimizer)
            settings = TRAINERS[sc.optimizer].settings
        for p in settings:
            cases += [(sid, "--set", p.name, v) for v in _bad_values(p)]
    return cases


def test_every_bad_parameter_and_setting_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    cases = _cases()
    assert len(cases) > 100
    out, db = tmp_path / "run", tmp_path / "runs.duckdb"
    for sid, flag, name, value in cases:
        code = main(["run", sid, flag, f"{name}={value}", "--out", str(out), "--db", str(db)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (sid, name, value, err)
        assert err.startswith("error: ") and len(err.splitlines()) == 1, (sid, name, value, err)
        assert name in err, (sid, name, value, err)
        assert not out.exists() and not db.exists(), (sid, name, value)


def test_a_plan_checks_everything_and_run_json_reloads_the_same_scenario(tmp_path):
    plan = plan_run("cheese-corner-v0", seeds=2, scenario_params={"maze_sizes": "[5]", "grid_size": 5})
    assert plan.params == {"maze_sizes": (5,), "grid_size": 5} and plan.seeds == (0, 1)
    meta = plan.meta(Thresholds())
    (tmp_path / "run.json").write_text(json.dumps(meta))
    _, scenario = load_run(tmp_path)
    assert scenario.params == plan.scenario.params and scenario.kind == "gridworld"
    with pytest.raises(MesascopeError, match="seeds"):
        plan_run("cheese-corner-v0", seeds=0)


def test_ppo_discounts_as_the_scenario_does_unless_told_otherwise():
    assert plan_run("monster-shields-v0", scenario_params={"gamma": 0.9}).config.gamma == 0.9
    assert plan_run("monster-shields-v0", scenario_params={"gamma": 0.9}, overrides={"gamma": 0.95}).config.gamma == 0.95
    assert plan_run("monster-shields-v0").config.gamma == 0.99


# -- one run path for a study: a tiny study registered for these tests -------------------------------------

def _measured(seed: int, j_deploy: float) -> Measurements:
    return Measurements(
        system=f"seed-{seed}", has_mesa_objective=False,
        j_base_train=1.0, j_intended_train=1.0, j_base_deploy=j_deploy, j_intended_deploy=j_deploy,
        j_behavioral_train=1.0, j_behavioral_deploy=1.0, behavioral_objective="itself", behavioral_fit=1.0,
        worst_j_intended_base_optimal_deploy=1.0, worst_j_intended_base_optimal_train=1.0, training_optimality_gap=0.0,
    )


def _execute(ctx):
    if ctx.params["explode"]:
        raise RuntimeError("the study failed mid-way")
    systems = tuple(StudySystem(s, _measured(s, ctx.config["j"])) for s in ctx.seeds)
    variants = tuple(StudySystem(s, _measured(s, 1.0), name="easy") for s in ctx.seeds)
    return StudyOutcome(systems, {"j": ctx.config["j"]}, variants, {"line": lambda fig: fig.add_subplot(1, 1, 1).plot([0, 1])})


def _check(audit):
    labels = {s["verdicts"]["hubinger"]["label"] for s in audit["systems"]}
    return [Check("Hubinger labels", sorted(labels), "a failure", "aligned" not in labels)]


@pytest.fixture
def toy_study():
    def build(*, explode: bool) -> Study:
        return Study("A toy study. It measures what it is told.", "It fails in deployment.", "none",
                     (Param("j", "float", 0.2, "deploy score", low=0.0, high=1.0),),
                     {"fast": {"j": 0.2}}, _execute, Finding("It fails in deployment.", _check))

    register("toy-study-v0", build, (Param("explode", "bool", False, "raise mid-way"),))
    yield "toy-study-v0"
    del _REGISTRY["toy-study-v0"]


def test_a_study_runs_through_the_one_harness(toy_study, tmp_path):
    events = []
    result = run(toy_study, seeds=2, out=tmp_path / "s", events=lambda stage, d, data: events.append(stage))
    assert events == ["started", "trained", "audited", "complete"]
    assert result["kind"] == "study" and result["finding"]["holds"] is True
    for block in result["systems"] + result["variants"]:
        assert set(block) >= {"measurements", "properties", "graphs", "verdicts", "invariants"}
    assert result["findings"]["tables"]["verdicts of each variant"][0]["variant"] == "easy"
    files = {p.name for p in (tmp_path / "s").iterdir()}
    assert {"run.json", "audit.json", "graphs", "plots"} <= files
    assert len(list((tmp_path / "s" / "graphs").glob("*.svg"))) == 4 * 3 or list((tmp_path / "s" / "graphs").glob("*.dot"))
    # judged again under other thresholds, from the stored measurements
    again = rejudge(tmp_path / "s", thresholds=Thresholds(tau=0.1, tau_acc=0.1))
    assert again["thresholds"]["tau"] == 0.1
    assert {s["verdicts"]["hubinger"]["label"] for s in again["systems"]} != {s["verdicts"]["hubinger"]["label"] for s in result["systems"]}


def test_a_failing_study_keeps_run_json_and_blocks_a_second_run(toy_study, tmp_path):
    events = []
    with pytest.raises(RuntimeError):
        run(toy_study, seeds=2, out=tmp_path / "c", scenario_params={"explode": True},
            events=lambda stage, d, data: events.append(stage))
    assert events == ["started", "failed"]
    meta = json.loads((tmp_path / "c" / "run.json").read_text())
    assert meta["kind"] == "study" and meta["seeds"] == [0, 1] and meta["scenario_params"] == {"explode": True}
    assert not (tmp_path / "c" / "audit.json").exists()
    with pytest.raises(MesascopeError, match="already holds a run"):
        run(toy_study, seeds=2, out=tmp_path / "c")


def test_list_is_one_line_per_scenario_and_show_prints_everything(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    ids = scenario_ids()
    assert len(lines) == len(ids) + 2
    for sid in ids:
        assert sum(line.startswith(sid + " ") for line in lines) == 1
    for sid in ("cheese-corner-v0", "nested-v0"):
        assert main(["show", sid]) == 0
        text = capsys.readouterr().out
        sc = get_scenario(sid)
        assert sc.expected_finding[:40] in text.replace("\n", " ")
        assert all(p.name in text for p in sc.param_specs)
        assert "mesascope reproduce" in text
