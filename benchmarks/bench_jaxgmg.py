"""PPO env steps/s side by side with jaxgmg (matomatical/jaxgmg), the JAX peer for goal misgeneralization.

jaxgmg is not on PyPI. Install it from a checkout into the environment that runs this file
(`pip install --no-deps -e path/to/jaxgmg` plus its dependencies: flax, chex, distrax, einops,
jaxtyping, wandb, orbax-checkpoint, moviepy, readchar, imageio); without it the bench reports itself as
skipped. Measured with jaxgmg commit ea3ac87.

Both train on 7x7 cheese-in-the-corner mazes with the settings of mesascope's `fast` preset: 64
environments x 16 steps per cycle, 3 epochs of 4 minibatches, Adam with gradient clipping 0.5, one seed,
on the CPU. Each contender is compiled and run once before timing; then `CYCLES` cycles of each are timed
in alternation (A B A B), `REPEATS` times, and the median is kept. A cycle is everything the training loop
does per update:

- mesascope: `jit(trainer.advance)` for `CYCLES` updates (rollout with asynchronous resets from the level
  pool of 65,536 levels, GAE, the clipped-surrogate updates), with its default egocentric 13x13x2 view and
  2x128 MLP, and with the full 7x7x3 view (`view=full`) and 2x128 and 3x128 MLPs: the same input and the
  same networks as jaxgmg's, parameter for parameter;
- jaxgmg: its own loop body, called through its public functions: a batch of levels from its level
  generator (`InfiniteDomainRandomisation`, fresh levels every cycle, or `FiniteDomainRandomisation` over
  a fixed pool of 65,536 levels as mesascope trains), `experience.collect_rollouts`, GAE, `ppo.ppo_update`;
  its boolean 7x7x3 view and `ReLUFF` networks of 2x128 and 3x128 (the latter close to mesascope's
  parameter count).

The ratios are mesascope's steps/s over jaxgmg's in the same run: its default against each jaxgmg
row, and its full-view network against jaxgmg's network of the same shape. Issue 17's goal is 2x at equal
network size. Last, the roofline of the full-view 2x128 PPO (`bench_roofline`): the float32 FLOP rate the
goal would need against the best rate this CPU's matmuls reach at the network's shapes, and the
time per step of the updates' forward and backward passes alone (`bench_roofline.gradient_floor`) against
the time per step the goal leaves.
Run alone: `python benchmarks/bench_jaxgmg.py`.
"""

from __future__ import annotations

from typing import Any

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import equinox as eqx
import jax

from mesascope.optimizers.ppo import make_train, ppo_config
from mesascope.scenarios import get_scenario
from mesascope.systems.policy import NetworkConfig

import bench_roofline
from _common import PeerMissing, median, require, timed

GOAL = 2.0
OURS = "mesascope 2x128 (egocentric 13x13x2)"
CYCLES = 20
REPEATS = 3
POOL = 65_536


class Mesascope:
    def __init__(self, view: str = "egocentric", depth: int = 2, seed: int = 0):
        self.config = ppo_config("fast", network=NetworkConfig(hidden=128, depth=depth))
        trainer = make_train(get_scenario("cheese-corner-v0", view=view), self.config)
        self.ts = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(seed)))
        self.advance = jax.jit(trainer.advance, static_argnums=1).lower(self.ts, CYCLES).compile()
        self.params = sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(self.ts.params, eqx.is_array)))
        self.steps = CYCLES * self.config.steps_per_update
        self()

    def __call__(self) -> None:
        self.ts, _ = jax.block_until_ready(self.advance(self.ts))


class Jaxgmg:
    def __init__(self, net_spec: str, fixed_pool: bool, seed: int = 0):
        import optax
        from flax.training.train_state import TrainState
        from jaxgmg.baselines import autocurricula, experience, networks, ppo
        from jaxgmg.environments import cheese_in_the_corner
        from jaxgmg.procgen import maze_generation

        cfg = ppo_config("fast")
        self.cfg, self.experience, self.ppo = cfg, experience, ppo
        self.env = cheese_in_the_corner.Env(obs_level_of_detail=0, penalize_time=False)
        generator = cheese_in_the_corner.LevelGenerator(height=7, width=7, maze_generator=maze_generation.TreeMazeGenerator(),
                                                        corner_size=1)
        rng = jax.random.PRNGKey(seed)
        rng_pool, rng_net, rng_level, self.rng = jax.random.split(rng, 4)
        if fixed_pool:
            self.gen = autocurricula.FiniteDomainRandomisation()
            self.gen_state = self.gen.init(levels=generator.vsample(rng_pool, num_levels=POOL))
        else:
            self.gen = autocurricula.InfiniteDomainRandomisation(level_generator=generator)
            self.gen_state = self.gen.init()
        net = networks.get_architecture(net_spec, num_actions=self.env.num_actions)
        params, self.net_state = net.init_params_and_state(rng=rng_net, obs_type=self.env.obs_type(level=generator.sample(rng_level)))
        self.ts = TrainState.create(apply_fn=jax.vmap(net.apply, in_axes=(None, 0, 0, 0)), params=params,
                                    tx=optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr)))
        self.gae = jax.jit(jax.vmap(experience.generalised_advantage_estimation, in_axes=(0, None, None)))
        self.params = sum(x.size for x in jax.tree_util.tree_leaves(params))
        self.steps = CYCLES * cfg.num_envs * cfg.num_steps
        self()

    def cycle(self) -> None:
        cfg = self.cfg
        rng_levels, rng_env, rng_update, self.rng = jax.random.split(self.rng, 4)
        self.gen_state, levels = self.gen.get_batch(state=self.gen_state, rng=rng_levels, num_levels=cfg.num_envs)
        rollouts = self.experience.collect_rollouts(rng=rng_env, num_steps=cfg.num_steps, train_state=self.ts,
                                                    net_init_state=self.net_state, env=self.env, levels=levels)
        advantages = self.gae(rollouts, cfg.gae_lambda, cfg.gamma)
        self.ts, _ = self.ppo.ppo_update(rng=rng_update, train_state=self.ts, rollouts=rollouts, advantages=advantages,
                                         num_epochs=cfg.update_epochs, num_minibatches_per_epoch=cfg.num_minibatches,
                                         gamma=cfg.gamma, clip_eps=cfg.clip_eps, entropy_coeff=cfg.ent_coef,
                                         critic_coeff=cfg.vf_coef, compute_metrics=False)
        self.gen_state = self.gen.update(state=self.gen_state, rollouts=rollouts, advantages=advantages)

    def __call__(self) -> None:
        for _ in range(CYCLES):
            self.cycle()
        jax.block_until_ready(self.ts.params)


def run() -> dict[str, Any]:
    try:
        require("jaxgmg", "flax")
    except PeerMissing:
        return {"name": "jaxgmg", "goal": GOAL, "skipped": "jaxgmg is not installed; it is not on PyPI: pip install "
                "--no-deps -e a checkout of matomatical/jaxgmg, with flax, chex, distrax, einops, jaxtyping, wandb, "
                "orbax-checkpoint, moviepy, readchar and imageio"}
    contenders: dict[str, Any] = {OURS: Mesascope()}
    # The same input (the 7x7x3 grid) and the same networks as jaxgmg's, parameter for parameter.
    contenders["mesascope 2x128 (full 7x7x3)"] = Mesascope(view="full")
    contenders["mesascope 3x128 (full 7x7x3)"] = Mesascope(view="full", depth=3)
    for spec in ("relu:2x128", "relu:3x128"):
        for fixed in (False, True):
            contenders[f"jaxgmg {spec[5:]} ({'fixed pool' if fixed else 'fresh levels'})"] = Jaxgmg(spec, fixed)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, c in contenders.items():
            times[name].append(timed(c))
    rates = {name: contenders[name].steps / median(ts) for name, ts in times.items()}
    ours = rates[OURS]
    same_input = {
        f"jaxgmg {net} ({levels})": rates[f"mesascope {net} (full 7x7x3)"] / rates[f"jaxgmg {net} ({levels})"]
        for net in ("2x128", "3x128") for levels in ("fresh levels", "fixed pool")
    }
    # Could any float32 implementation reach the goal at equal input and network? The roofline of the
    # full-view 2x128 PPO: its FLOPs per step over the best matmul rate at its own shapes.
    roof = bench_roofline.run(ppo_config("fast"), repeats=3, view="full")
    bench_roofline.measure_again(roof)
    floor = bench_roofline.gradient_floor(ppo_config("fast"), view="full")
    needed = GOAL * rates["jaxgmg 2x128 (fresh levels)"]
    return {
        "name": "jaxgmg",
        "goal_needs_steps_per_s": needed,
        "roofline_full_2x128": {k: roof[k] for k in ("network_shapes_best_gflops", "bound_steps_per_s_at_network_shapes",
                                                     "peak_gflops", "bound_steps_per_s_at_peak")}
        | {"flops_per_step": roof["ppo_flops"]["flops_per_step"]},
        "gradient_floor_full_2x128": floor,
        "goal": GOAL,
        "ours": OURS,
        "cycles": CYCLES,
        "steps_per_s": rates,
        "params": {name: int(c.params) for name, c in contenders.items()},
        "ratio_vs": {name: ours / rate for name, rate in rates.items() if name.startswith("jaxgmg")},
        "same_input_ratio_vs": same_input,
    }


def report(res: dict[str, Any]) -> None:
    print("== jaxgmg: PPO env steps/s, cheese-in-the-corner 7x7, 64 envs x 16 steps, 3 x 4 minibatches ==")
    if "skipped" in res:
        print("  skipped:", res["skipped"])
        return
    for name, rate in res["steps_per_s"].items():
        ratio, same = res["ratio_vs"].get(name), res.get("same_input_ratio_vs", {}).get(name)
        extra = f"  mesascope (egocentric) is {ratio:.2f}x" if ratio is not None else ""
        extra += f", same input and network {same:.2f}x" if same is not None else ""
        print(f"  {name:<38} {rate / 1e3:6.1f}k steps/s  ({res['params'][name] / 1e3:.1f}k parameters){extra}")
    roof = res["roofline_full_2x128"]
    print(f"  {GOAL:g}x jaxgmg 2x128 with fresh levels needs {res['goal_needs_steps_per_s'] / 1e3:.0f}k steps/s at "
          f"{roof['flops_per_step'] / 1e3:.0f}k FLOP per step (full view, 2x128): "
          f"{res['goal_needs_steps_per_s'] * roof['flops_per_step'] / 1e9:.0f} GFLOP/s, against the best float32 "
          f"matmul rate at the network's shapes, {roof['network_shapes_best_gflops']:.0f} GFLOP/s "
          f"(bound {roof['bound_steps_per_s_at_network_shapes'] / 1e3:.0f}k steps/s; "
          f"at the large-matrix peak {roof['bound_steps_per_s_at_peak'] / 1e3:.0f}k)")
    floor = res.get("gradient_floor_full_2x128")
    if floor:
        print(f"  the updates' gradients alone (forward and backward of 3 x 4 minibatches, nothing else) take "
              f"{floor['us_per_step_best']:.2f} us per step; {GOAL:g}x jaxgmg leaves "
              f"{1e6 / res['goal_needs_steps_per_s']:.2f} us per step for everything")


if __name__ == "__main__":
    report(run())
