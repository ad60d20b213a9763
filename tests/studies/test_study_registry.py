"""Studies share the scenario registry's namespace and the run-folder layout."""

from __future__ import annotations

import json

import pytest

import mesascope.scenarios  # noqa: F401  (registers everything)
from mesascope.cli import main
from mesascope.experiments.study import run_study
from mesascope.scenarios import get_scenario, registered_ids
from mesascope.scenarios.study import _STUDIES, Study, get_study, is_study, register_study, study_ids
from mesascope.types import MesascopeError

STUDIES = {"evolution-fertility-v0", "greedy-genes-v0", "tessellating-hills-v0", "grader-v0", "cancer-shift-v0", "nested-v0"}


def test_studies_are_registered_apart_from_gridworld_scenarios():
    assert STUDIES <= set(study_ids())
    assert not STUDIES & set(registered_ids())
    for sid in STUDIES:
        st = get_study(sid)
        assert is_study(sid) and st.id == sid and st.expected_finding and "fast" in st.presets


def test_get_scenario_on_a_study_or_a_typo_says_what_to_do():
    with pytest.raises(MesascopeError, match="is a study"):
        get_scenario("greedy-genes-v0")
    with pytest.raises(MesascopeError, match="greedy-genes-v0"):
        get_scenario("greedy-genes-v9")
    with pytest.raises(ValueError, match="registered twice"):
        register_study("greedy-genes-v0", lambda: get_study("greedy-genes-v0"))


def test_bad_settings_fail_before_anything_is_written(tmp_path):
    with pytest.raises(MesascopeError, match="no training setting"):
        run_study("greedy-genes-v0", seeds=1, out=tmp_path / "a", overrides={"bogus": 1})
    with pytest.raises(MesascopeError, match="no parameter"):
        run_study("greedy-genes-v0", seeds=1, out=tmp_path / "a", params={"bogus": 1})
    with pytest.raises(MesascopeError, match="unknown preset"):
        run_study("greedy-genes-v0", seeds=1, out=tmp_path / "a", preset="huge")
    assert not (tmp_path / "a").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "greedy-genes-v0", "--set", "bogus=1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "bogus" in err


def test_run_json_is_written_before_the_study_runs(tmp_path):
    def boom(ctx):
        raise RuntimeError("the study failed mid-way")

    register_study("boom-test-v0", lambda: Study("boom-test-v0", "d", "e", "none", {"fast": {}}, {}, boom))
    try:
        with pytest.raises(RuntimeError):
            run_study("boom-test-v0", seeds=2, out=tmp_path / "c")
        meta = json.loads((tmp_path / "c" / "run.json").read_text())
        assert meta["kind"] == "study" and meta["seeds"] == [0, 1]
        assert not (tmp_path / "c" / "audit.json").exists()
        with pytest.raises(MesascopeError, match="already holds a run"):
            run_study("boom-test-v0", seeds=2, out=tmp_path / "c")
    finally:
        del _STUDIES["boom-test-v0"]


def test_every_preset_of_a_study_has_the_same_settings():
    for sid in STUDIES:
        st = get_study(sid)
        keys = {name: set(cfg) for name, cfg in st.presets.items()}
        assert len({frozenset(k) for k in keys.values()}) == 1, (sid, keys)
        config, params = st.resolve("full", {}, {})
        assert config == dict(st.presets["full"]) and params == dict(st.params)
