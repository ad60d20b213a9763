"""The report of a sweep: the curve over the swept values, with the spread over seeds (render only).

Reads `SWEEP_DIR/curve.json` as `mesascope sweep` writes it (`mesascope.experiments.sweep`)::

    {"scenario": "cheese-corner-v0", "goal": "corner", "swept": ["region"],
     "points": [{"index": 0, "params": {"region": 1}, "settings": {}, "status": "complete", "n_seeds": 4,
                 "j_intended_deploy": {"mean": -0.1, "sd": 0.04, "min": -0.16, "max": -0.06, "values": [...]},
                 "goal_first_deploy": {...}, "uniform_goal_first_deploy": 0.2}, ...]}

Every entry of a point that is a dict with a `mean` is a metric; `uniform_<metric>` is drawn as that
metric's uniform-random baseline. The older `{"param", "values", "metrics": {m: {"mean": [...], ...}}}`
column layout is read too. The band is `[min, max]` over seeds when given, else `mean ± sd`; a failed
point (no numbers) leaves a gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesascope.report.html import CSS, esc, section, table
from mesascope.report.plots import curve_svg, grid_curve_svg
from mesascope.report.run_report import ReportError
from mesascope.types import read_json_object

__all__ = ["build_sweep_report", "load_curve", "write_sweep_report"]

_SEED_KEYS = ("per_seed", "seeds", "values")
_SPREAD_KEYS = ("std", "spread", "sd")


def _label(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in value.items())
    return value


def _point_value(point: Mapping[str, Any], swept: list[str]) -> Any:
    if "value" in point:
        return point["value"]
    values = {**(point.get("params") or {}), **(point.get("settings") or {})}
    if "values" in point and isinstance(point["values"], Mapping):
        values.update(point["values"])
    if swept and len(swept) == 1 and swept[0] in values:
        return values[swept[0]]
    return {k: values[k] for k in (swept or values) if k in values}


def _metric_names(points: list[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for p in points:
        candidates = dict(p.get("metrics") or {})
        candidates.update({k: v for k, v in p.items() if isinstance(v, Mapping) and "mean" in v})
        for m in candidates:
            if m not in names:
                names.append(m)
    return names


def load_curve(data: Mapping[str, Any]) -> tuple[str, list[Any], dict[str, dict[str, list[Any]]]]:
    """Normalise a curve.json to `(x label, values, {metric: {"mean", "sd", "lo", "hi", "seeds", "uniform"}})`.

    Raises:
        ReportError: if neither accepted shape is present.
    """
    swept = list(data.get("swept") or data.get("params") or ([data["param"]] if data.get("param") else []))
    param = ", ".join(swept) or "value"
    columns: dict[str, dict[str, list[Any]]] = {}
    if isinstance(data.get("points"), list):
        points = [p for p in data["points"] if isinstance(p, Mapping)]
        values = [_label(_point_value(p, swept)) for p in points]
        for m in _metric_names(points):
            stats = [((p.get("metrics") or {}).get(m) or p.get(m) or {}) for p in points]
            stats = [s if isinstance(s, Mapping) else {} for s in stats]
            columns[m] = {
                "mean": [s.get("mean") for s in stats],
                "sd": [next((s[k] for k in _SPREAD_KEYS if k in s), None) for s in stats],
                "min": [s.get("min") for s in stats],
                "max": [s.get("max") for s in stats],
                "seeds": [next((s[k] for k in _SEED_KEYS if isinstance(s.get(k), list)), None) for s in stats],
                "uniform": [p.get(f"uniform_{m}") for p in points],
            }
    elif isinstance(data.get("metrics"), Mapping) and isinstance(data.get("values"), list):
        values = [_label(v) for v in data["values"]]
        n = len(values)
        for m, s in data["metrics"].items():
            columns[m] = {
                "mean": list(s.get("mean") or [None] * n),
                "sd": list(next((s[k] for k in _SPREAD_KEYS if k in s), [None] * n)),
                "min": list(s.get("min") or [None] * n),
                "max": list(s.get("max") or [None] * n),
                "seeds": list(next((s[k] for k in _SEED_KEYS if isinstance(s.get(k), list)), [None] * n)),
                "uniform": list(s.get("uniform") or [None] * n),
            }
    else:
        raise ReportError("curve.json has neither a `points` list nor `values` + `metrics`; see mesascope.report.sweep_report")
    for col in columns.values():
        lo, hi = [], []
        for mean, sd, mn, mx in zip(col["mean"], col["sd"], col["min"], col["max"]):
            if mn is not None and mx is not None:
                lo.append(mn), hi.append(mx)
            elif mean is not None and sd is not None:
                lo.append(mean - sd), hi.append(mean + sd)
            else:
                lo.append(None), hi.append(None)
        col["lo"], col["hi"] = lo, hi
    return param, values, columns


def _title(metric: str, goal: str | None) -> str:
    if metric == "goal_first_deploy" and goal:
        return f"P({goal} reached first), deploy"
    if metric == "j_intended_deploy":
        return "J_intended on deploy"
    if metric == "regret_intended_deploy":
        return "exact regret V* - V^pi (intended), deploy"
    if metric == "shown_separating":
        return "training episodes on separating levels"
    if metric == "train_steps_per_second":
        return "training steps/s (all seeds)"
    if metric.startswith("measure:"):
        _, name, split = metric.split(":", 2)
        return f"{name.replace('_', ' ')}, {split}"
    return metric.replace("_", " ")


def _two_axes(data: Mapping[str, Any], titled: Mapping[str, Mapping[str, list[Any]]]) -> tuple[str, str, dict[str, Any]] | None:
    """A two-axis grid as `(x axis, line axis, lines)` for `grid_curve_svg`, or None for one axis.

    The x axis is a swept name whose values are all numbers (the first such); the other one gives the
    lines, in the order its values first appear.
    """
    swept = list(data.get("swept") or [])
    points = [p for p in data.get("points") or [] if isinstance(p, Mapping)]
    if len(swept) != 2 or not points:
        return None
    values = [{**(p.get("params") or {}), **(p.get("settings") or {})} for p in points]
    if any(not all(name in v for name in swept) for v in values):
        return None
    numeric = [n for n in swept if all(isinstance(v[n], (int, float)) and not isinstance(v[n], bool) for v in values)]
    x_name = numeric[0] if numeric else swept[0]
    line_name = next(n for n in swept if n != x_name)
    lines: dict[str, Any] = {}
    for i, v in enumerate(values):
        line = lines.setdefault(str(_label(v[line_name])), {"x": []})
        line["x"].append(v[x_name])
        for metric, col in titled.items():
            entry = line.setdefault(metric, {"mean": [], "lo": [], "hi": [], "uniform": []})
            for key in ("mean", "lo", "hi", "uniform"):
                entry[key].append(col[key][i])
    return x_name, line_name, lines


def build_sweep_report(sweep_dir: str | Path) -> str:
    """A sweep's report as one self-contained HTML string (the curve with its seed spread, and a table).

    Raises:
        ReportError: if the folder has no readable curve.json.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / "curve.json"
    if not path.exists():
        raise ReportError(f"{sweep_dir} has no curve.json; pass the folder written by `mesascope sweep`")
    data = read_json_object(path, holds="a sweep curve", error=ReportError)
    param, values, columns = load_curve(data)
    goal = data.get("goal")
    titled = {_title(m, goal): col for m, col in columns.items()}
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    grid = _two_axes(data, titled)
    if grid is not None:
        svg = grid_curve_svg(*grid, list(titled))
    else:
        svg = curve_svg(param, values if numeric_x else [str(v) for v in values], titled)
    rows = []
    for i, v in enumerate(values):
        for m, col in titled.items():
            seeds = col["seeds"][i]
            rows.append([str(v), m, col["mean"][i], col["sd"][i], col["lo"][i], col["hi"][i],
                         len(seeds) if isinstance(seeds, list) else None, col["uniform"][i]])
    tbl = table([param, "metric", "mean", "sd", "low", "high", "seeds", "uniform-random"], rows, numeric=range(2, 8), table_id="curve-table")
    scenario = data.get("scenario", "sweep")
    body = [
        section("curve", "Curve", [
            f'<figure class="plot">{svg}<figcaption>Mean over seeds (line), spread over seeds (band: min to max, '
            "or mean ± std), one dot per seed.</figcaption></figure>",
            f'<div class="scroll">{tbl}</div>',
        ], lead=(f"{len(values)} points: {' x '.join(data['swept'])}." if grid is not None else f"{len(values)} values of {param}.") + (
            " Fixed: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in data["fixed"].items()) + "."
            if isinstance(data.get("fixed"), Mapping) and data["fixed"] else "")),
    ]
    points = [p for p in data.get("points") or [] if isinstance(p, Mapping)]
    if points:
        prow = [[p.get("dir") or p.get("path") or str(p.get("index")), str(values[i]), p.get("status", ""),
                 p.get("n_seeds"), p.get("error") or ""] for i, p in enumerate(points)]
        body.append(section("points", "Points", [table(["run folder", param, "status", "seeds", "error"], prow, numeric=(3,), table_id="points-table")],
                            lead="Each point is a complete run folder: `mesascope report` on it writes its own report."))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(scenario)} sweep · mesascope report</title><style>{CSS}</style></head><body>"
        f'<header class="top"><div class="wrap"><h1>{esc(scenario)}</h1><span class="meta">sweep over {esc(param)}</span></div></header>'
        f'<main class="wrap">{"".join(body)}</main><footer>written by mesascope from {esc(sweep_dir.name)}/curve.json</footer>'
        "</body></html>\n"
    )


def write_sweep_report(sweep_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` into the sweep folder (or to `out`) and return its path."""
    sweep_dir = Path(sweep_dir)
    text = build_sweep_report(sweep_dir)
    target = Path(out) if out is not None else sweep_dir / "report.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


