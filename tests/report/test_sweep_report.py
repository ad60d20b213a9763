"""The sweep report: the curve with its seed spread, from curve.json (synthetic numbers, known answers)."""

from __future__ import annotations

import json

import pytest

from mesascope.cli import main
from mesascope.report import ReportError, build_sweep_report
from mesascope.report.sweep_report import load_curve


def _stats(values):
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "values": values}


def _point(index, region, j, first, status="complete"):
    point = {"index": index, "dir": f"point-{index:03d}", "params": {"region": region}, "settings": {}, "status": status}
    if status == "complete":
        point.update(n_seeds=len(j), goal="corner", j_intended_deploy=_stats(j), goal_first_deploy=_stats(first),
                     uniform_goal_first_deploy=0.2)
    else:
        point.update(error="training diverged", goal="corner")
    return point


CURVE = {
    "scenario": "cheese-corner-v0",
    "goal": "corner",
    "swept": ["region"],
    "points": [
        _point(0, 1, [-0.16, -0.1, -0.05], [0.37, 0.38, 0.39]),
        _point(1, 2, [0.5, 0.6, 0.7], [0.23, 0.25, 0.27]),
        _point(2, 3, [], [], status="failed"),
        _point(3, 5, [0.92, 0.93, 0.94], [0.16, 0.17, 0.18]),
    ],
}


def test_curve_points_are_read_with_their_spread():
    param, values, columns = load_curve(CURVE)
    assert param == "region" and values == [1, 2, 3, 5]
    j = columns["j_intended_deploy"]
    assert j["mean"][1] == pytest.approx(0.6) and j["sd"][1] == pytest.approx(0.1)
    assert (j["lo"][0], j["hi"][0]) == (-0.16, -0.05)  # min..max over seeds
    assert j["mean"][2] is None and j["lo"][2] is None  # the failed point is a gap, not a zero
    assert columns["goal_first_deploy"]["uniform"] == [0.2, 0.2, None, 0.2]


def test_column_layout_and_sd_band():
    data = {"param": "lr", "values": [0.1, 0.2], "metrics": {"score": {"mean": [1.0, 2.0], "sd": [0.5, 0.25]}}}
    param, values, columns = load_curve(data)
    assert param == "lr" and values == [0.1, 0.2]
    assert columns["score"]["lo"] == [0.5, 1.75] and columns["score"]["hi"] == [1.5, 2.25]  # mean +- sd without min/max


def test_sweep_report_is_one_page_with_the_curve(tmp_path, structure_of):
    (tmp_path / "curve.json").write_text(json.dumps(CURVE))
    assert main(["report", str(tmp_path)]) == 0  # a folder with curve.json and no audit.json is a sweep
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 1 and "<script" not in html and 'src="http' not in html
    structure = structure_of(html)
    assert structure.sections == ["curve", "points"]
    rows = structure.tables["curve-table"]
    assert rows[0] == ["region", "metric", "mean", "sd", "low", "high", "seeds", "uniform-random"]
    assert rows[1] == ["1", "J_intended on deploy", "−0.103", "0.055", "−0.160", "−0.050", "3", "–"]
    assert rows[2] == ["1", "P(corner reached first), deploy", "0.380", "0.010", "0.370", "0.390", "3", "0.200"]
    assert rows[5] == ["3", "J_intended on deploy", "–", "–", "–", "–", "–", "–"]
    assert structure.tables["points-table"][3] == ["point-002", "3", "failed", "–", "training diverged"]


def test_bad_curve_files_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="no curve.json"):
        build_sweep_report(tmp_path)
    (tmp_path / "curve.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(ReportError, match="neither a `points` list"):
        build_sweep_report(tmp_path)


def test_a_curve_built_by_the_sweep_module_is_read(tmp_path, structure_of):
    """The point numbers as `mesascope.experiments.sweep` computes them from a real run's audit."""
    from pathlib import Path

    from mesascope.experiments.sweep import point_summary

    audit = json.loads((Path(__file__).resolve().parent.parent / "golden" / "report_run" / "audit.json").read_text())
    summary = point_summary(audit)
    curve = {"scenario": audit["scenario"], "goal": summary["goal"], "swept": ["region"],
             "points": [{"index": 0, "dir": "point-000", "params": {"region": 1}, "settings": {}, "status": "complete", **summary}]}
    (tmp_path / "curve.json").write_text(json.dumps(curve))
    html = build_sweep_report(tmp_path)
    rows = structure_of(html).tables["curve-table"]
    j = [s["scores"]["deploy"]["intended"] for s in audit["systems"]]
    assert rows[1][:3] == ["1", "J_intended on deploy", f"{sum(j) / len(j):.3f}".replace("-", "−")]
    assert rows[2][1] == f"P({summary['goal']} reached first), deploy"
    assert rows[2][7] == f"{audit['baselines']['uniform']['first_reached']['deploy'][summary['goal']]:.3f}"


def _grid_point(index, alpha, curriculum, j):
    return {"index": index, "dir": f"point-{index:03d}", "params": {"alpha": alpha}, "settings": {"curriculum": curriculum},
            "status": "complete", "n_seeds": len(j), "goal": "corner", "j_intended_deploy": _stats(j),
            "shown_separating": _stats([alpha, alpha])}


def test_a_two_axis_sweep_draws_a_line_per_value_of_the_second_axis(tmp_path, structure_of):
    points = [_grid_point(i, a, c, [a + k, a + k + 0.1]) for i, (a, (k, c)) in
              enumerate((a, kc) for a in (0, 0.01, 0.1) for kc in enumerate(("dr", "plr")))]
    curve = {"scenario": "cheese-corner-v0", "goal": "corner", "swept": ["alpha", "curriculum"], "points": points}
    (tmp_path / "curve.json").write_text(json.dumps(curve))
    html = build_sweep_report(tmp_path)
    assert html.count("<svg") == 1 and 'id="plot-sweep-grid' in html
    # One line per curriculum, one panel per metric (the legend names the lines).
    assert html.count("curriculum=dr") >= 1 and html.count("curriculum=plr") >= 1
    assert "training episodes on separating levels" in html
    rows = structure_of(html).tables["curve-table"]
    assert rows[1][:3] == ["alpha=0, curriculum=dr", "J_intended on deploy", "0.050"]


def test_point_summary_reads_the_training_record(tmp_path):
    import numpy as np

    from mesascope.experiments.sweep import point_summary

    audit = {"seeds": [0, 1], "config": {"total_timesteps": 1000},
             "systems": [{"seed": k, "scores": {"deploy": {"intended": 0.5}}, "regret": {"deploy": {"intended": r}}}
                         for k, r in enumerate((0.2, 0.4))]}
    np.savez(tmp_path / "training.npz", shown_separating=np.array([0.1, 0.3]), train_seconds=np.float64(4.0))
    s = point_summary(audit, "corner", tmp_path)
    assert s["regret_intended_deploy"]["mean"] == pytest.approx(0.3)
    assert s["shown_separating"]["values"] == [0.1, 0.3]
    assert s["train_steps_per_second"]["mean"] == pytest.approx(500.0)
    # An older run without these records: the curve still has its other numbers.
    (tmp_path / "training.npz").unlink()
    assert "shown_separating" not in point_summary(audit, "corner", tmp_path)
