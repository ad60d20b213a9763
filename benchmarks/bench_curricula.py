"""Curriculum overhead: PPO training steps/s under each level curriculum against plain PPO (`dr`).

Each curriculum trains cheese-corner-v0 with the `fast` preset (64 envs x 16 steps per update, pool of
65,536 levels) for the same number of updates, from a state that has already run `WARM` updates, so the
PLR buffer (1,024 levels) is filled and replay is on. `jit(trainer.advance)` is compiled ahead of time
(`.lower(...).compile()`), so compilation is excluded and reported separately; contenders are timed in
alternation, one repeat of each per round, and the ratio is the median rate over `dr`'s median rate in the
same run. What the overhead buys:

- `plr` (positive value loss or MaxMC): a scan over the rollout for each episode's score and the
  insertion of each environment's finished episode into the buffer;
- `exact-plr`: the same, plus the exact regret of every finished episode's level under the base
  objective: its tabular view, the network on every state of it, value iteration and policy evaluation;
- `accel`: `exact-plr`, plus the edits of each replayed level and the exact regret of every child.

Robust PLR discards the gradients of fresh levels, so it also learns from fewer steps; that is a cost in
steps to competence, not in steps/s, and the sweep's table reports it.

Run alone: `.venv/bin/python benchmarks/bench_curricula.py`.
"""

from __future__ import annotations

from typing import Any

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax

from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.scenarios import get_scenario

from _common import fmt_rate, median, timed

SCENARIO = "cheese-corner-v0"
CONTENDERS = {"dr": {}, "plr (pvl)": {"curriculum": "plr", "plr_score": "pvl"},
              "plr (maxmc)": {"curriculum": "plr", "plr_score": "maxmc"}, "exact-plr": {"curriculum": "exact-plr"},
              "accel": {"curriculum": "accel"}}
WARM = 60
UPDATES = 20
REPEATS = 3


class Contender:
    def __init__(self, settings: dict[str, Any], seed: int = 0):
        self.config = ppo_config("fast", **settings)
        trainer = make_train(get_scenario(SCENARIO), self.config)
        ts = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(seed)))
        warm = jax.jit(trainer.advance, static_argnums=1)
        self.ts, _ = jax.block_until_ready(warm(ts, WARM))
        lowered = jax.jit(trainer.advance, static_argnums=1).lower(self.ts, UPDATES)
        compiled: list[Any] = []
        self.compile_s = timed(lambda: compiled.append(lowered.compile()))
        self.advance = compiled[0]
        self.steps = UPDATES * self.config.steps_per_update
        self.times: list[float] = []
        self.replay_share = None

    def __call__(self) -> None:
        self.ts, metrics = jax.block_until_ready(self.advance(self.ts))
        if "replay_share" in metrics:
            self.replay_share = float(metrics["replay_share"].mean())


def run() -> dict[str, Any]:
    contenders = {name: Contender(settings) for name, settings in CONTENDERS.items()}
    for _ in range(REPEATS):
        for c in contenders.values():
            c.times.append(timed(c))
    rates = {name: c.steps / median(c.times) for name, c in contenders.items()}
    return {
        "name": "curricula",
        "scenario": SCENARIO,
        "updates": UPDATES,
        "warm_updates": WARM,
        "steps_per_s": rates,
        "compile_s": {name: c.compile_s for name, c in contenders.items()},
        "replay_share": {name: c.replay_share for name, c in contenders.items()},
        "ratio_vs_dr": {name: rates[name] / rates["dr"] for name in rates},
    }


def report(res: dict[str, Any]) -> None:
    print(f"== curricula: PPO steps/s per curriculum, {res['scenario']}, {res['updates']} updates after {res['warm_updates']} ==")
    for name, rate in res["steps_per_s"].items():
        share = res["replay_share"][name]
        extra = f", replay share {share:.2f}" if share is not None else ""
        print(f"  {name:<12} {fmt_rate(rate)}  {res['ratio_vs_dr'][name]:.2f}x of dr  "
              f"(compile {res['compile_s'][name]:.1f} s{extra})")


if __name__ == "__main__":
    report(run())
