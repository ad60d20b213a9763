"""`--mlflow`: a clear error without MLflow, and a real log to a local file store with it.

MLflow comes from the optional extra `mlflow` (the `mlflow-skinny` client: about 25 s and 40 MB to
install here), which the `test` extra also installs, so `make test` runs the logging test.
"""

from __future__ import annotations

import json
import sys

import pytest

from mesascope.cli import main


def test_without_mlflow_run_refuses_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` sees when it is not installed
    out = tmp_path / "run"
    assert main(["run", "cheese-corner-v0", "--seeds", "1", "--out", str(out), "--mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --mlflow needs MLflow, which is not installed;")
    assert "optional extra `mlflow` (pip install mlflow-skinny)" in err and "Traceback" not in err
    assert not (out / "run.json").exists()  # nothing was started


def test_logs_params_scores_and_the_run_folder(fixture_run_copy, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="MLflow is the optional extra `mlflow`: pip install 'mesascope[mlflow]'")
    from mlflow.tracking import MlflowClient

    from mesascope.cli import _after_run

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # restored after the test
    run_dir = fixture_run_copy()
    store = tmp_path / "mlruns"
    _after_run(run_dir, mlflow=True, mlflow_uri=str(store))  # what `mesascope run ... --mlflow` does last
    out = capsys.readouterr().out
    assert "report written to" in out and "logged to MLflow as run" in out
    run_id = out.split("logged to MLflow as run")[1].split()[0]

    client = MlflowClient(tracking_uri=store.as_uri())
    logged = client.get_run(run_id)
    audit = json.loads((run_dir / "audit.json").read_text())
    params = logged.data.params
    assert params["scenario"] == "cheese-corner-v0" and params["n_seeds"] == "2"
    assert json.loads(params["config.total_timesteps"]) == audit["config"]["total_timesteps"]
    assert json.loads(params["param.grid_size"]) == 5
    metrics = logged.data.metrics
    for system in audit["systems"]:
        seed = system["seed"]
        assert metrics[f"seed{seed}.deploy.J_intended"] == pytest.approx(system["scores"]["deploy"]["intended"])
        assert metrics[f"seed{seed}.deploy.first_corner"] == pytest.approx(system["first_reached"]["deploy"]["corner"])
    mean = sum(s["scores"]["train"]["base"] for s in audit["systems"]) / len(audit["systems"])
    assert metrics["mean.train.J_base"] == pytest.approx(mean)
    files = {a.path for a in client.list_artifacts(run_id, "run")}
    assert {"run/audit.json", "run/report.html", "run/training.npz", "run/pictures"} <= files
