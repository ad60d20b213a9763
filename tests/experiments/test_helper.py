"""The audit's helper process (`mesascope.experiments.helper`, issue 16): the same numbers bit for bit, a
task it has not started is computed here, and whatever goes wrong with it the audit computes the task
itself, with the genuine error where there is one."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from mesascope.experiments import helper as helper_module
from mesascope.experiments.helper import HELPER_ENV, Helper, start_helper
from mesascope.experiments.profiling import StageTimer
from mesascope.levels.tabular import TabularMDP
from mesascope.measures.mce_irl import mce_irl


def _levels(n_levels=3, s=6, a=4, k=2, seed=0):
    rng = np.random.default_rng(seed)
    next_state = rng.integers(0, s, size=(n_levels, s, a)).astype(np.int32)
    features = rng.normal(size=(n_levels, s, a, k)).astype(np.float32)
    tab = TabularMDP(next_state=next_state, features=features, start=np.zeros(n_levels, np.int32),
                     terminal=np.zeros((n_levels, s), bool), next_features=np.zeros((n_levels, s, k), np.float32))
    probs = rng.dirichlet(np.ones(a), size=(n_levels, s)).astype(np.float32)
    return tab, probs


def _waiting_helper(monkeypatch):
    """A helper whose tasks are always waited for (no computing here), so every result is the helper's."""
    original = Helper._collect

    def collect(self, index):
        with self._cond:
            while index not in self._started and index not in self._done and self._alive:
                self._cond.wait()
        return original(self, index)

    monkeypatch.setattr(Helper, "_collect", collect)
    helper = start_helper()
    if helper is None:
        pytest.skip("no helper process on this machine (one core, or not the CPU backend)")
    return helper


def test_the_helper_gives_the_same_bits_and_reports_what_it_compiled(monkeypatch):
    tab, probs = _levels()
    with _waiting_helper(monkeypatch) as helper:
        task = helper.submit(mce_irl, tab, probs, gamma=0.9, steps=30)
        timer = StageTimer()
        with timer.stage("MCE IRL"):
            got = task.result()
        assert 0 in helper._started  # computed there, not here
    want = mce_irl(tab, probs, gamma=0.9, steps=30)
    for name in got._fields:
        assert np.array_equal(np.asarray(getattr(got, name)), np.asarray(getattr(want, name))), name
    # The helper's program was compiled or loaded there, and the profile says so.
    stage = timer.as_dict()["stages"]["MCE IRL"]
    assert stage["compiled"] + stage["from_cache"] >= 1


def test_a_task_the_helper_has_not_started_is_computed_here():
    helper = start_helper()
    if helper is None:
        pytest.skip("no helper process on this machine")
    with helper:
        tab, probs = _levels()
        # Collected at once: the helper is still starting, so the task is computed here and skipped there.
        task = helper.submit(mce_irl, tab, probs, gamma=0.9, steps=30)
        assert helper._collect(task._index) is None
        got = task.result()
    want = mce_irl(tab, probs, gamma=0.9, steps=30)
    assert np.array_equal(np.asarray(got.weights), np.asarray(want.weights))


def test_a_helper_that_dies_leaves_the_work_to_this_process(monkeypatch):
    tab, probs = _levels()
    with _waiting_helper(monkeypatch) as helper:
        helper._process.kill()
        helper._process.wait()
        got = helper.submit(mce_irl, tab, probs, gamma=0.9, steps=30).result()
    want = mce_irl(tab, probs, gamma=0.9, steps=30)
    assert np.array_equal(np.asarray(got.weights), np.asarray(want.weights))


def test_a_call_that_fails_in_the_helper_raises_its_genuine_error_here(monkeypatch):
    tab, probs = _levels()
    with _waiting_helper(monkeypatch) as helper:
        task = helper.submit(mce_irl, tab, probs, gamma=0.9, steps=30, terminal_value="sometimes")
        with pytest.raises(ValueError, match="terminal_value must be 'zero' or 'absorbing'"):
            task.result()


def test_the_helper_runs_only_mesascope_functions(monkeypatch):
    with _waiting_helper(monkeypatch) as helper:
        # Refused there (reported as a failure), so computed here: the value is still right.
        assert helper.submit(np.add, 1, 2).result() == 3
        assert not helper._done  # its failed reply was consumed


@pytest.mark.parametrize("value", ["off", "0", "False", " no "])
def test_the_helper_can_be_turned_off(monkeypatch, value):
    monkeypatch.setenv(HELPER_ENV, value)
    assert start_helper() is None


def test_one_core_or_another_backend_gets_no_helper(monkeypatch):
    monkeypatch.delenv(HELPER_ENV, raising=False)
    monkeypatch.setattr(helper_module, "_cores", lambda: 1)
    assert start_helper() is None
    monkeypatch.setattr(helper_module, "_cores", lambda: 2)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert start_helper() is None


def test_an_audit_is_the_same_with_and_without_the_helper(monkeypatch, tmp_path):
    from mesascope.experiments.audit import AuditConfig, audit_run

    run_dir = _tiny_run(tmp_path)
    monkeypatch.setenv(HELPER_ENV, "off")
    alone = audit_run(run_dir, AuditConfig(n_train=8, n_deploy=8))
    monkeypatch.delenv(HELPER_ENV)
    helper_used = []
    real_start = helper_module.start_helper

    def start():
        helper = real_start()
        helper_used.append(helper)
        return helper

    monkeypatch.setattr("mesascope.experiments.audit.start_helper", start)
    _waiting_helper(monkeypatch).close()  # the patch that makes the audit wait for the helper's results
    with_helper = audit_run(run_dir, AuditConfig(n_train=8, n_deploy=8))
    if helper_used[0] is None:
        pytest.skip("no helper process on this machine")
    # Per split one MCE IRL fit and one first-reach table, all four computed there.
    assert helper_used[0]._next == 4 and helper_used[0]._started == {0, 1, 2, 3}
    assert json.dumps(alone, sort_keys=True) == json.dumps(with_helper, sort_keys=True)


def _tiny_run(tmp_path):
    from mesascope.cli import main

    out = tmp_path / "run"
    code = main(["run", "cheese-corner-v0", "--seeds", "1", "--audit-levels", "4", "--param", "grid_size=5",
                 "--param", "maze_sizes=[5]", "--set", "total_timesteps=2048", "--set", "num_envs=32",
                 "--set", "num_steps=32", "--set", "level_pool=64", "--out", str(out), "--db",
                 str(tmp_path / "runs.duckdb")])
    assert code in (0, None)
    return out


def test_parallel_sweep_points_do_without_the_helper(monkeypatch):
    from mesascope.experiments import sweep

    monkeypatch.setenv(HELPER_ENV, "on")  # restored after the test, whatever `_without_helper` writes
    monkeypatch.setattr(helper_module, "_cores", lambda: 2)
    sweep._without_helper()  # what each worker process runs first when points run side by side
    assert start_helper() is None


def test_a_helper_still_starting_is_stopped_at_once():
    import time

    helper = start_helper()
    if helper is None:
        pytest.skip("no helper process on this machine")
    started = time.perf_counter()
    helper.close()  # it is still importing JAX: killed, not waited for
    assert time.perf_counter() - started < 0.5
    assert helper._process.returncode is not None
