"""Run every benchmark, print a summary of the ratios against their goals, write results/latest.json.

`make bench` runs this after installing the optional `bench` extra (minigrid, stable-baselines3, torch).
Without the extra, the peer comparisons are reported as skipped with the install command; mesascope's own
numbers are still measured. Budget: about 5-8 minutes on a 2-core machine (time to competence alone: 2-3).

Usage: `.venv/bin/python benchmarks/run_all.py [--only env,solver,measures,audit,competence,curricula,jaxgmg,ppo] [--out PATH]`
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mesascope  # noqa: E402,F401  (sets XLA_FLAGS before JAX initialises)

from _common import machine  # noqa: E402

BENCHES = ("env", "solver", "measures", "audit", "competence", "curricula", "jaxgmg", "ppo")  # ppo last: it limits torch to one thread for the whole process


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("mesascope", "jax", "jaxlib", "numpy", "gymnasium", "minigrid", "stable-baselines3", "torch"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def _summary_rows(results: dict[str, Any]) -> list[tuple[str, str, float | None, float | None, str]]:
    """(benchmark, comparison, ratio, goal, note)."""
    rows: list[tuple[str, str, float | None, float | None, str]] = []
    env = results.get("env")
    if env and "error" not in env:
        if "skipped" in env:
            rows.append(("env", "mesascope vs Minigrid", None, env["goal"], "skipped: " + env["skipped"]))
        else:
            r = env["ratios"]
            rows.append(("env", "step+observe vs Minigrid gymnasium loop", r["step+observe vs gymnasium loop (headline)"], env["goal"], "headline, like-for-like"))
            rows.append(("env", "step only vs Minigrid gymnasium loop", r["step only vs gymnasium loop"], env["goal"], "no observation"))
            rows.append(("env", "step+observe vs Minigrid SyncVectorEnv", r["step+observe vs SyncVectorEnv"], env["goal"], ""))
    ppo = results.get("ppo")
    if ppo and "error" not in ppo:
        if "skipped" in ppo:
            rows.append(("ppo", "mesascope vs stable-baselines3", None, ppo["goal"], "skipped: " + ppo["skipped"]))
        else:
            rows.append(("ppo", "mesascope make_train vs SB3 PPO", ppo["ratio"], ppo["goal"], "SB3 torch 1 thread"))
            roof = ppo.get("roofline", {})
            if "max_ratio_vs_sb3_at_peak" in roof:
                # A bound, not a result: no goal status; a ratio above it is impossible on this CPU.
                rows.append(("ppo", "roofline bound vs SB3 PPO (largest possible)", roof["max_ratio_vs_sb3_at_peak"], None,
                             f"{roof['ppo_flops']['flops_per_step'] / 1e6:.2f} MFLOP/step at {roof['peak_gflops']:.0f} GFLOP/s; "
                             f"{roof['max_ratio_vs_sb3_at_network_shapes']:.0f}x at the network's matmul shapes"))
    solver = results.get("solver")
    if solver and "error" not in solver:
        rows.append(("solver", "jitted VI vs NumPy VI (median over sizes)", solver["ratio"], None,
                     f"range {solver['ratio_min']:.1f}-{solver['ratio_max']:.1f}x"))
    measures = results.get("measures")
    if measures and "error" not in measures:
        rows.append(("measures", "MCE IRL JAX vs NumPy (median over sizes)", measures["ratio"], None,
                     f"range {measures['ratio_min']:.1f}-{measures['ratio_max']:.1f}x; imitation not installed"))
    audit = results.get("audit")
    if audit and "error" not in audit:
        # A time against a time goal: the "ratio" is goal / measured, so >= 1 means met.
        rows.append(("audit", "warm `mesascope audit`, 4 x (256+256) levels", audit["goal_s"] / audit["warm_wall_s"], 1.0,
                     f"{audit['warm_wall_s']:.1f} s warm, {audit['cold']['wall_s']:.1f} s cold; goal {audit['goal_s']:.0f} s"))
    competence = results.get("competence")
    if competence and "error" not in competence:
        # Time against a time goal, as for the audit: goal / measured, so >= 1 means met; never met unless
        # every seed became competent.
        for r in competence["scenarios"]:
            steps = (f"{r['steps_to_competence'] / 1e3:.0f}k steps/seed" if r["competent"]
                     else f"NOT competent in {r['budget_steps'] / 1e3:.0f}k steps")
            note = (f"{r['wall_s']:.1f} s, {steps}, {r['steps_per_s'] / 1e3:.1f}k steps/s, "
                    f"{r['compiled']} compiled / {r['from_cache']} cached")
            if r["goal_s"] is not None:
                ratio = r["goal_s"] / r["wall_s"] if r["competent"] else 0.0
                rows.append(("compete", f"{r['scenario']}: {r['seeds']} seeds to J_base {r['target']}", ratio, 1.0,
                             f"{note}; goal {r['goal_s']:.0f} s"))
            else:
                rows.append(("compete", f"{r['scenario']}: {r['seeds']} seeds to J_base {r['target']} (s)", None, None, note))
    curricula = results.get("curricula")
    if curricula and "error" not in curricula:
        # Overhead, not a race: a curriculum's steps/s over plain PPO's (dr) in the same run, no goal.
        for name, ratio in curricula["ratio_vs_dr"].items():
            if name != "dr":
                rows.append(("curric", f"{name} steps/s vs plain PPO (dr)", ratio, None,
                             f"{curricula['steps_per_s'][name] / 1e3:.1f}k vs {curricula['steps_per_s']['dr'] / 1e3:.1f}k steps/s"))
    jaxgmg = results.get("jaxgmg")
    if jaxgmg and "error" not in jaxgmg:
        if "skipped" in jaxgmg:
            rows.append(("jaxgmg", "mesascope PPO vs jaxgmg PPO", None, jaxgmg["goal"], "skipped: " + jaxgmg["skipped"]))
        else:
            ours = jaxgmg["params"][jaxgmg["ours"]]
            for name, ratio in jaxgmg["ratio_vs"].items():
                rows.append(("jaxgmg", f"PPO steps/s vs {name}", ratio, jaxgmg["goal"],
                             f"{jaxgmg['params'][name] / 1e3:.1f}k vs {ours / 1e3:.1f}k parameters"))
            for name, ratio in jaxgmg.get("same_input_ratio_vs", {}).items():
                rows.append(("jaxgmg", f"same view+net vs {name}", ratio, jaxgmg["goal"],
                             f"full 7x7x3 view, {jaxgmg['params'][name] / 1e3:.1f}k parameters each"))
    for name, res in results.items():
        if "error" in res:
            rows.append((name, "error", None, None, res["error"].splitlines()[-1]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset of: " + ", ".join(BENCHES))
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"), help="where to write the JSON results")
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")

    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    for name in [b for b in BENCHES if b in chosen]:
        module = __import__(f"bench_{name}")
        t0 = time.perf_counter()
        try:
            res = module.run()
            module.report(res)
        except Exception:  # keep going: one broken benchmark must not hide the others
            res = {"name": name, "error": traceback.format_exc()}
            print(f"== {name}: ERROR ==\n{res['error']}", file=sys.stderr)
        res["wall_s"] = time.perf_counter() - t0
        results[name] = res
        print(flush=True)

    rows = _summary_rows(results)
    print("== summary (ratios measured in this run; medians over repeats) ==")
    print(f"  {'bench':<7} {'comparison':<44} {'ratio':>8} {'goal':>7}  {'status':<8} note")
    for bench, what, ratio, goal, note in rows:
        ratio_s = f"{ratio:.0f}x" if ratio is not None and ratio >= 10 else (f"{ratio:.1f}x" if ratio is not None else "-")
        goal_s = f">={goal:.0f}x" if goal is not None else "-"
        if ratio is None:  # a peer not installed, an error, or a figure without a goal (its note says)
            status = "skipped" if note.startswith("skipped") else "-"
        else:
            status = "-" if goal is None else ("met" if ratio >= goal else "NOT met")
        print(f"  {bench:<7} {what:<44} {ratio_s:>8} {goal_s:>7}  {status:<8} {note}")
    total = time.perf_counter() - t_start
    print(f"  total {total:.0f}s")

    payload = {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": _versions(),
        "total_s": total,
        "summary": [
            {"bench": b, "comparison": w, "ratio": r, "goal": g,
             "met": None if r is None or g is None else bool(r >= g), "note": n}
            for b, w, r, g, n in rows
        ],
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"  wrote {out}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
