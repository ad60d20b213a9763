"""Time to competence: wall time until every one of 4 seeds reaches `J_base >= 0.9` on training levels.

What a researcher waits for is not steps per second but the time until the agents are competent on the
training distribution and the finding can be read (issue 17). For each scenario, 4 seeds train together
with the `fast` preset and the stop-when-competent option (`stop_at_j_base=0.9`): every
`competence_every` updates (default 16, 16,384 env steps per seed) each seed's exact `J_base` is measured,
as the audit does, on a fixed sample of 256 training levels, and training ends when every seed has
passed (or the preset's 1M-step budget per seed is spent: then the row says "not reached").

The wall time is `train_systems` as `mesascope run` calls it: level pools, compilation (or loading from
the persistent compilation cache: the counts are reported), training and the checks. The steps per second
are every seed's env steps over that wall time, and over the time after the first chunk (training and
checks only, without compilation or level pools); one check's warm time and the level pools' generation
(`init`, warm) are measured separately, after training. The goal (issue 17) is
40 s for `cheese-corner-v0` (7x7); the second scenario (`red-door-v0`) has no goal, it shows the option
on another task.

Run alone: `.venv/bin/python benchmarks/bench_competence.py`; with `--choices`, cheese-corner-v0 for
each observation (egocentric, full) and network width (64, 128, 256), one after the other.
"""

from __future__ import annotations

import os
import time
from typing import Any

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax
import jax.numpy as jnp

from mesascope.experiments.profiling import StageTimer
from mesascope.experiments.train import competence_sample, j_base_of, make_competence_check, train_systems
from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.systems.policy import NetworkConfig
from mesascope.scenarios import get_scenario

from _common import fmt_rate, median, timed

SCENARIOS = ("cheese-corner-v0", "red-door-v0")
GOALS_S = {"cheese-corner-v0": 40.0}
SEEDS = 4
TARGET = 0.9


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure(scenario_id: str, seeds: int = SEEDS, target: float = TARGET, scenario_params: dict[str, Any] | None = None,
            **settings: Any) -> dict[str, Any]:
    """Train `seeds` seeds of one scenario until all reach `J_base >= target`; times and steps."""
    scenario = get_scenario(scenario_id, **(scenario_params or {}))
    config = ppo_config("fast", stop_at_j_base=target, **settings)
    ticks: list[tuple[float, float]] = []  # (fraction of the budget done, time)
    timer = StageTimer()
    load_before = _load()
    t0 = time.perf_counter()
    with timer.stage("train"):
        params, static, metrics = train_systems(scenario, config, list(range(seeds)),
                                                lambda stage, frac: ticks.append((frac, time.perf_counter())))
    wall = time.perf_counter() - t0
    at_step = [int(s) for s in metrics["competent_at_step"]]
    budget = config.num_updates * config.steps_per_update
    steps_run = int(metrics["episode_return"].shape[1]) * config.steps_per_update  # per seed, what the program ran
    # ticks[0] is the 0% tick; ticks[1] ends the first chunk (level pools, compilation, first updates).
    chunks = [(min(frac * budget, steps_run), t) for frac, t in ticks[1:]]
    first_s = chunks[0][1] - t0
    steady = None
    if chunks[-1][0] > chunks[0][0]:
        steady = seeds * (chunks[-1][0] - chunks[0][0]) / (chunks[-1][1] - chunks[0][1])
    # One check, warm (its programs are compiled by now), on the trained parameters.
    check = make_competence_check(scenario, competence_sample(scenario, config.competence_levels))
    check_s = median([timed(lambda: j_base_of(check, static, params)) for _ in range(3)])
    # The level pools and network initialisation alone, warm: how much of the first chunk is not compilation.
    init = jax.jit(jax.vmap(make_train(scenario, config).init))
    keys = jnp.stack([jax.random.key(s) for s in range(seeds)])
    jax.block_until_ready(init(keys))
    init_s = timed(lambda: jax.block_until_ready(init(keys)))
    competent = all(s >= 0 for s in at_step)
    prof = timer.as_dict()
    return {
        "scenario": scenario_id,
        "seeds": seeds,
        "target": target,
        "competent": competent,
        "wall_s": wall,
        "competent_at_step": at_step,
        "steps_to_competence": max(at_step) if competent else None,
        "budget_steps": budget,
        "j_base_at_end": [float(x) for x in j_base_of(check, static, params)],
        "steps_run_per_seed": steps_run,
        "steps_per_s": seeds * steps_run / wall,
        "first_chunk_s": first_s,
        "init_s": init_s,
        "steady_steps_per_s": steady,
        "checks": int(metrics["competence_checks"].shape[0]),
        "check_s": check_s,
        "competence_every": config.competence_every,
        "competence_levels": config.competence_levels,
        "compiled": prof["compiled"],
        "from_cache": prof["from_cache"],
        "compile_s": prof["compile_seconds"],
        "goal_s": GOALS_S.get(scenario_id),
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": _load(),
    }


def run() -> dict[str, Any]:
    rows = [measure(sid) for sid in SCENARIOS]
    head = rows[0]
    return {
        "name": "competence",
        "target": TARGET,
        "seeds": SEEDS,
        "scenarios": rows,
        "goal_s": head["goal_s"],
        "met": bool(head["competent"] and head["wall_s"] <= head["goal_s"]),
        "cpus": os.cpu_count(),
    }


def report(res: dict[str, Any]) -> None:
    print(f"== competence: wall time until {res['seeds']} seeds reach J_base >= {res['target']} on training levels "
          f"(fast preset, stop_at_j_base) ==")
    for r in res["scenarios"]:
        per_seed = ", ".join(f"{s / 1e3:.0f}k" if s >= 0 else "never" for s in r["competent_at_step"])
        done = (f"all competent at {r['steps_to_competence'] / 1e3:.0f}k env steps per seed (per seed: {per_seed})"
                if r["competent"] else f"NOT all competent within {r['budget_steps'] / 1e3:.0f}k steps (per seed: {per_seed})")
        goal = ""
        if r["goal_s"] is not None:
            goal = f"; goal {r['goal_s']:.0f} s: {'met' if r['competent'] and r['wall_s'] <= r['goal_s'] else 'NOT met'}"
        print(f"  {r['scenario']:<18} {r['wall_s']:6.1f} s  {done}{goal}")
        steady = fmt_rate(r["steady_steps_per_s"]) if r["steady_steps_per_s"] else "-"
        print(f"  {'':<18} env steps/s ({r['seeds']} seeds): {fmt_rate(r['steps_per_s'])} over the wall time, {steady} after the "
              f"first chunk")
        load = "-" if r["loadavg_1min_before"] is None else f"{r['loadavg_1min_before']:.1f} -> {r['loadavg_1min_after']:.1f}"
        print(f"  {'':<18} first chunk {r['first_chunk_s']:.1f} s (level pools + init alone, warm: {r['init_s']:.1f} s); "
              f"programs compiled {r['compiled']}, from cache {r['from_cache']} ({r['compile_s']:.1f} s); "
              f"{r['checks']} checks x {r['check_s']:.2f} s ({r['competence_levels']} levels, every {r['competence_every']} "
              f"updates); load average {load} on {res['cpus']} CPUs")


CHOICES = ({"view": "egocentric"}, {"view": "full"})
WIDTHS = (64, 128, 256)


def choices() -> list[dict[str, Any]]:
    """Time to competence on cheese-corner-v0 for each observation (`view`) and network width, one after
    the other in one process (issue 17: which reaches competence soonest)."""
    rows = []
    for params in CHOICES:
        for hidden in WIDTHS:
            r = measure("cheese-corner-v0", scenario_params=params, network=NetworkConfig(hidden=hidden))
            rows.append(r | {"view": params["view"], "hidden": hidden})
            steps = f"{r['steps_to_competence'] / 1e3:.0f}k" if r["competent"] else "not reached"
            print(f"  view {params['view']:<10} hidden {hidden:>4}: {r['wall_s']:6.1f} s, {steps} steps per seed, "
                  f"J_base at the end {', '.join(f'{j:.2f}' for j in r['j_base_at_end'])}", flush=True)
    return rows


if __name__ == "__main__":
    import sys

    if "--choices" in sys.argv:
        choices()
    else:
        out = run()
        report(out)
