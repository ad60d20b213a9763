"""PPO training env-steps/s: mesascope's jitted `make_train` against stable-baselines3 PPO.

Both train on cheese-corner-v0 train levels with the same PPO settings: mesascope's `fast` preset
(64 envs x 16 steps per update, 3 epochs of 4 minibatches of 256, lr 1e-3, clip 0.2, GAE 0.95, gamma
0.99, entropy 0.001, grad-norm 0.5), and the same number of environment steps per measured run
(20 updates = 20,480 steps by default).

mesascope: `jit(trainer.advance)` for that many updates, compiled ahead of time with
`.lower(...).compile()` so compile time is reported separately and excluded; `init` (which also draws the
65,536-level pool) is reported separately too. Network: shared MLP 2x128 (ReLU).

stable-baselines3: `PPO("MlpPolicy", ..., device="cpu")` on 64 copies of
`mesascope.adapters.gymnasium_env.ScenarioEnv("cheese-corner-v0", split="train")` in SB3's
`DummyVecEnv`, default MlpPolicy (separate 2x64 tanh policy and value nets, a similar parameter count;
counts are printed), torch limited to 1 thread: on these shared 2-core machines torch's default of 2
threads made SB3 10-15x slower when another process was busy (measured: ~250 vs ~3,000 steps/s), and
1 thread is the usual setting for SB3 with small MLPs on CPU, so this is SB3's best configuration here.
A warm-up `learn` is excluded; each measured `learn(n, reset_num_timesteps=False)`
continues training. The adapter's raw random-action steps/s is reported too, to show how much of SB3's
time is the environment.

Roofline (`bench_roofline`, same process, before SB3 starts): XLA's FLOP count per environment step of
one real mesascope iteration, this machine's attained float32 matmul GFLOP/s (a 2048^3 square and the
network's own layer shapes), and the resulting upper bounds on PPO steps/s; divided by the SB3 figure of
this run they give the largest mesascope/SB3 ratio the CPU allows at these settings.

Run alone: `.venv/bin/python benchmarks/bench_ppo.py`.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import equinox as eqx
import jax

import bench_roofline

from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.scenarios import get_scenario

from _common import PeerMissing, fmt_rate, rate_summary, require, timed

GOAL = 50.0
SCENARIO = "cheese-corner-v0"
ADAPTER = "mesascope.adapters.gymnasium_env"


class MesascopePPO:
    def __init__(self, n_updates: int, seed: int = 0):
        scenario = get_scenario(SCENARIO)
        self.config = ppo_config("fast")
        trainer = make_train(scenario, self.config)
        init = jax.jit(trainer.init)
        self.init_s = timed(lambda: jax.block_until_ready(init(jax.random.key(seed))))  # compile + level pool
        self.ts = jax.block_until_ready(init(jax.random.key(seed)))
        lowered = jax.jit(trainer.advance, static_argnums=1).lower(self.ts, n_updates)
        compiled: list[Any] = []
        self.compile_s = timed(lambda: compiled.append(lowered.compile()))
        self.advance = compiled[0]
        self.steps = n_updates * self.config.num_envs * self.config.num_steps
        self.params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(self.ts.params, eqx.is_array)))
        self()  # first run (allocations), excluded

    def __call__(self) -> None:
        self.ts, metrics = jax.block_until_ready(self.advance(self.ts))
        self.last_return = float(np.asarray(metrics["episode_return"])[-1])


class SB3PPO:
    def __init__(self, n_steps_total: int, config, seed: int = 0):
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env

        from mesascope.adapters.gymnasium_env import ScenarioEnv

        torch.set_num_threads(1)
        venv = make_vec_env(lambda: ScenarioEnv(SCENARIO, split="train"), n_envs=config.num_envs, seed=seed)
        self.model = PPO(
            "MlpPolicy",
            venv,
            n_steps=config.num_steps,
            batch_size=config.minibatch_size,
            n_epochs=config.update_epochs,
            learning_rate=config.lr,
            gamma=config.gamma,
            gae_lambda=config.gae_lambda,
            clip_range=config.clip_eps,
            ent_coef=config.ent_coef,
            vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm,
            device="cpu",
            seed=seed,
            verbose=0,
        )
        self.torch_threads = torch.get_num_threads()
        self.params = sum(p.numel() for p in self.model.policy.parameters())
        self.steps = n_steps_total
        self.warmup_s = timed(lambda: self.model.learn(config.num_envs * config.num_steps * 2))

    def __call__(self) -> None:
        self.model.learn(self.steps, reset_num_timesteps=False)


def adapter_steps_per_s(n_steps: int = 4000, seed: int = 0) -> dict[str, Any]:
    """Raw random-action steps/s of one `ScenarioEnv` in a Python loop (what SB3 pays per env step)."""
    from mesascope.adapters.gymnasium_env import ScenarioEnv

    env = ScenarioEnv(SCENARIO, split="train")
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 4, size=n_steps).tolist()

    def loop() -> None:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()

    loop()  # warm-up (first-call compilation inside the adapter, if any)
    return rate_summary(n_steps, [timed(loop) for _ in range(3)])


def run(n_updates: int = 20, repeats: int = 3) -> dict[str, Any]:
    ms = MesascopePPO(n_updates)
    out: dict[str, Any] = {
        "name": "ppo",
        "config": {"scenario": SCENARIO, "preset": "fast", "num_envs": ms.config.num_envs,
                   "num_steps": ms.config.num_steps, "update_epochs": ms.config.update_epochs,
                   "num_minibatches": ms.config.num_minibatches, "steps_per_run": ms.steps, "repeats": repeats},
        "goal": GOAL,
        "mesascope": {"init_s": ms.init_s, "compile_s": ms.compile_s, "params": int(ms.params)},
    }
    try:
        out["roofline"] = bench_roofline.run(ms.config)
    except Exception as exc:  # the bound is extra information: never lose the PPO timings to it
        out["roofline"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    sb3 = None
    try:
        require("torch", "stable_baselines3")
        try:
            require(ADAPTER)
        except PeerMissing as exc:
            raise PeerMissing(f"the Gymnasium adapter {ADAPTER} is not importable yet ({exc.__cause__})") from exc
        sb3 = SB3PPO(ms.steps, ms.config)
        out["sb3"] = {"params": int(sb3.params), "torch_threads": sb3.torch_threads, "warmup_s": sb3.warmup_s}
    except PeerMissing as exc:
        out["skipped"] = str(exc)

    t_ms: list[float] = []
    t_sb: list[float] = []
    for _ in range(repeats):
        t_ms.append(timed(ms))
        if sb3 is not None:
            t_sb.append(timed(sb3))
    out["mesascope"].update(rate_summary(ms.steps, t_ms))
    out["mesascope"]["episode_return_last_update"] = ms.last_return
    roof = out["roofline"]
    if "error" not in roof:
        bench_roofline.measure_again(roof)
        flops = roof["ppo_flops"]["flops_per_step"]
        roof["mesascope_attained_gflops"] = out["mesascope"]["steps_per_s"] * flops / 1e9
        roof["mesascope_fraction_of_peak_bound"] = out["mesascope"]["steps_per_s"] / roof["bound_steps_per_s_at_peak"]
    if sb3 is None:
        return out
    out["sb3"].update(rate_summary(sb3.steps, t_sb))
    out["adapter_env"] = adapter_steps_per_s()
    out["ratio"] = out["mesascope"]["steps_per_s"] / out["sb3"]["steps_per_s"]
    if "error" not in roof:
        roof["max_ratio_vs_sb3_at_peak"] = roof["bound_steps_per_s_at_peak"] / out["sb3"]["steps_per_s"]
        roof["max_ratio_vs_sb3_at_network_shapes"] = roof["bound_steps_per_s_at_network_shapes"] / out["sb3"]["steps_per_s"]
    return out


def report(res: dict[str, Any]) -> None:
    c = res["config"]
    print(f"== PPO training env-steps/s, {c['scenario']}, {c['num_envs']} envs x {c['num_steps']} steps, "
          f"{c['steps_per_run']} steps per run, median of {c['repeats']} ==")
    m = res["mesascope"]
    print(f"  mesascope make_train (fast)       {fmt_rate(m['steps_per_s']):>8}/s  "
          f"[{fmt_rate(m['min_steps_per_s'])}..{fmt_rate(m['max_steps_per_s'])}]  "
          f"compile {m['compile_s']:.1f}s, init {m['init_s']:.1f}s (excluded), {m['params']} params")
    roof = res.get("roofline", {})
    if "error" in roof:
        print(f"  roofline failed: {roof['error']}")
    elif roof:
        bench_roofline.report(roof)
        print(f"  mesascope attains {roof['mesascope_attained_gflops']:.0f} GFLOP/s, "
              f"{100 * roof['mesascope_fraction_of_peak_bound']:.0f}% of the peak bound")
    if "skipped" in res:
        print(f"  stable-baselines3 skipped: {res['skipped']}")
        return
    s = res["sb3"]
    print(f"  stable-baselines3 PPO MlpPolicy   {fmt_rate(s['steps_per_s']):>8}/s  "
          f"[{fmt_rate(s['min_steps_per_s'])}..{fmt_rate(s['max_steps_per_s'])}]  "
          f"torch threads {s['torch_threads']}, {s['params']} params")
    a = res["adapter_env"]
    print(f"  (ScenarioEnv adapter alone, random actions: {fmt_rate(a['steps_per_s'])}/s)")
    print(f"  ratio {res['ratio']:.0f}x   goal >= {res['goal']:.0f}x: {'met' if res['ratio'] >= res['goal'] else 'NOT met'}")
    if roof and "error" not in roof:
        print(f"  largest ratio this CPU allows at these settings: {roof['max_ratio_vs_sb3_at_peak']:.0f}x at the matmul peak, "
              f"{roof['max_ratio_vs_sb3_at_network_shapes']:.0f}x at the network's matmul shapes (SB3 {fmt_rate(s['steps_per_s'])}/s)")


if __name__ == "__main__":
    report(run())
    sys.exit(0)
