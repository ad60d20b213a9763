"""Roofline for PPO training on this machine: FLOPs per environment step against attained matmul FLOP/s.

Answers "how fast could mesascope's PPO possibly train here, at the settings of the SB3 comparison?":

1. FLOPs per environment step of one PPO iteration at the `fast` preset (64 envs x 16 rollout steps, then
   3 epochs x 4 minibatches of 256: forward + backward + clipping + Adam), from XLA's own cost analysis
   of the real jitted `trainer.advance(ts, 1)`. XLA's cost analysis counts a `while` loop body once
   whatever its trip count (measured: a 10-step scan of a matmul reports one matmul), so the program is
   lowered a second time with every `jax.lax.scan` fully unrolled (the same jaxpr without loops) and that
   count is used; both programs are run from the same state and their parameters must agree to float
   rounding. A hand count of the network's matmuls is printed as a cross-check.
2. This machine's attained float32 matmul GFLOP/s: the large square `2048^3` (the machine's peak as far as
   BLAS-style code can reach it) and the network's own shapes (hidden layers at the rollout batch of 64
   and the minibatch of 256, forward and weight gradient), each through `jax.numpy` (jitted, repeated
   inside one `fori_loop` so dispatch is not timed) and NumPy. Medians over repeats are printed; the
   bounds use the best repeat, since an upper bound must not be lowered by another process's load
   (`bench_ppo` also measures a second round after its timings and keeps the better one).
3. Upper bounds on PPO steps/s: peak / FLOPs-per-step (the large-square peak: no CPU program of this
   arithmetic can beat it) and FLOPs-per-step over the best rate attained at the network's own shapes
   (what the network's matmuls can reach, everything else free). `bench_ppo` divides both by the SB3
   steps/s measured in the same run: the largest mesascope/SB3 ratio this CPU allows at equal settings.

Run alone: `.venv/bin/python benchmarks/bench_roofline.py` (prints the bounds without SB3).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax
import jax.numpy as jnp

from mesascope.optimizers.ppo import PPOConfig, make_train, ppo_config
from mesascope.scenarios import get_scenario

from _common import fmt_rate, median, timed

SCENARIO = "cheese-corner-v0"
SQUARE = 2048
TARGET_S = 0.15  # seconds per timed repeat, so short matmuls are timed over many calls


@contextlib.contextmanager
def _unrolled_scans() -> Iterator[None]:
    """Trace with every `jax.lax.scan` fully unrolled, so XLA's cost analysis sees every iteration."""
    original = jax.lax.scan

    def scan(*args: Any, **kwargs: Any) -> Any:
        kwargs["unroll"] = True
        return original(*args, **kwargs)

    jax.lax.scan = scan
    try:
        yield
    finally:
        jax.lax.scan = original


def _cost(compiled: Any) -> dict[str, float]:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):  # older jaxlibs return one dict per device
        ca = ca[0]
    return {k: float(ca.get(k, 0.0)) for k in ("flops", "transcendentals", "bytes accessed")}


def hand_count(config: PPOConfig, obs_size: int, n_actions: int) -> dict[str, float]:
    """Matmul FLOPs of one iteration, counted by hand (2*m*k*n per dense layer; MLP networks only).

    Forward: every dense layer. Backward: every weight gradient, and every input gradient except the
    first layer's (observations are not differentiated).
    """
    net = config.network
    if net.kind != "mlp":
        raise ValueError("hand count written for the MLP network only")
    dims = [obs_size] + [net.hidden] * net.depth
    layers = list(zip(dims[:-1], dims[1:])) + [(net.hidden, n_actions), (net.hidden, 1)]
    fwd = sum(2 * i * o for i, o in layers)  # per sample
    bwd = sum(2 * i * o for i, o in layers) + sum(2 * i * o for k, (i, o) in enumerate(layers) if k > 0)
    batch = config.num_envs * config.num_steps
    rollout = fwd * (batch + config.num_envs)  # every step, plus the bootstrap value of the last observation
    update = config.update_epochs * batch * (fwd + bwd)
    return {"rollout": float(rollout), "update": float(update), "per_step": float(rollout + update) / batch}


def ppo_flops(config: PPOConfig, seed: int = 0, view: str = "egocentric") -> dict[str, Any]:
    """XLA's FLOP count of one real PPO iteration (`advance(ts, 1)`), per environment step."""
    scenario = get_scenario(SCENARIO, view=view)
    trainer = make_train(scenario, config)
    ts = jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(seed)))
    # Fresh lambdas so neither program reuses the other's cached trace.
    looped = jax.jit(lambda s: trainer.advance(s, 1)).lower(ts).compile()
    t0 = time.perf_counter()
    with _unrolled_scans():
        unrolled = jax.jit(lambda s: trainer.advance(s, 1)).lower(ts).compile()
    compile_s = time.perf_counter() - t0
    # Same program: one iteration from the same state gives the same parameters (up to float rounding,
    # since XLA fuses an unrolled program differently).
    p_loop = jax.tree_util.tree_leaves(looped(ts)[0].params)
    p_unrolled = jax.tree_util.tree_leaves(unrolled(ts)[0].params)
    max_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(p_loop, p_unrolled))
    if max_diff > 1e-4:
        raise AssertionError(f"unrolled PPO iteration differs from the looped one by {max_diff}")
    steps = config.num_envs * config.num_steps
    cost = _cost(unrolled)
    hand = hand_count(config, int(np.prod(scenario.spec.obs_shape)), scenario.spec.n_actions)
    return {
        "flops_per_iteration": cost["flops"],
        "flops_per_step": cost["flops"] / steps,
        "transcendentals_per_step": cost["transcendentals"] / steps,
        "flops_looped_program_loop_bodies_once": _cost(looped)["flops"],
        "hand_count_matmul_flops_per_step": hand["per_step"],
        "hand_count_update_share": hand["update"] / (hand["rollout"] + hand["update"]),
        "unrolled_vs_looped_max_param_diff": max_diff,
        "unrolled_compile_s": compile_s,
        "steps_per_iteration": steps,
    }


def _rate(fn: Callable[[], Any], flops_per_call: float, repeats: int) -> dict[str, float]:
    """GFLOP/s of `fn` (which blocks until done): median and best over `repeats` timed batches of calls."""
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    n = max(1, int(TARGET_S / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return {"gflops": flops_per_call / median(times) / 1e9, "gflops_best": flops_per_call / min(times) / 1e9}


def _jnp_matmul(m: int, k: int, n: int, rng: np.random.Generator) -> tuple[Callable[[], Any], float]:
    """A jitted loop of `reps` matmuls `[m,k] @ [k,n]`, each on a shifted input so none can be hoisted."""
    reps = max(1, min(256, int(2e9 // (2 * m * k * n))))
    a = jnp.asarray(rng.standard_normal((m, k), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((k, n), dtype=np.float32))

    @jax.jit
    def loop(a, b):
        def body(i, acc):
            return acc + (a + i.astype(jnp.float32)) @ b

        return jax.lax.fori_loop(0, reps, body, jnp.zeros((m, n), jnp.float32))

    return (lambda: loop(a, b).block_until_ready()), reps * 2.0 * m * k * n


def matmul_rates(shapes: dict[str, tuple[int, int, int]], repeats: int = 5, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Attained float32 GFLOP/s per named `(m, k, n)` shape, through jax.numpy and NumPy."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for name, (m, k, n) in shapes.items():
        fn, flops = _jnp_matmul(m, k, n, rng)
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out[name] = {
            "shape": [m, k, n],
            "jnp": _rate(fn, flops, repeats),
            "numpy": _rate(lambda: np.dot(a, b), 2.0 * m * k * n, repeats),
        }
    return out


def gradient_floor(config: PPOConfig, view: str = "egocentric", repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Microseconds per environment step that the updates' gradients alone take: the network's forward
    and backward pass on one minibatch (log-softmax and value, no clipping, no Adam, no shuffling),
    timed inside one `fori_loop` of plain SGD steps so dispatch is not counted, times the
    `update_epochs x num_minibatches` minibatches of an iteration, over its `num_envs x num_steps` steps.
    No implementation of this PPO in float32 XLA can spend less per step on its updates."""
    import equinox as eqx

    from mesascope.systems.policy import make_actor_critic

    spec = get_scenario(SCENARIO, view=view).spec
    model = make_actor_critic(jax.random.key(seed), spec.obs_shape, spec.n_actions, config.network)
    params, static = eqx.partition(model, eqx.is_array)
    rng = np.random.default_rng(seed)
    mb = config.minibatch_size
    obs = jnp.asarray(rng.random((mb, *spec.obs_shape)) < 0.5, jnp.float32)
    action = jnp.asarray(rng.integers(0, spec.n_actions, mb))
    target = jnp.asarray(rng.standard_normal(mb), jnp.float32)
    reps = 100

    def loss(p):
        logits, value = jax.vmap(eqx.combine(p, static))(obs)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
        return -(logp * target).mean() + ((value - target) ** 2).mean()

    @jax.jit
    def loop(p):
        def body(i, p):
            return jax.tree_util.tree_map(lambda w, g: w - 1e-6 * g, p, jax.grad(loss)(p))

        return jax.lax.fori_loop(0, reps, body, p)

    run_once = lambda: jax.block_until_ready(loop(params))  # noqa: E731
    run_once()
    times = [timed(run_once) / reps for _ in range(repeats)]
    per_iteration = config.update_epochs * config.num_minibatches
    steps = config.num_envs * config.num_steps
    return {"us_per_minibatch_best": min(times) * 1e6, "us_per_minibatch": median(times) * 1e6,
            "us_per_step_best": min(times) * per_iteration / steps * 1e6}


def network_shapes(config: PPOConfig, obs_size: int) -> dict[str, tuple[int, int, int]]:
    """The dense layers that carry almost all of PPO's FLOPs, at the batch sizes PPO runs them."""
    h, mb, ne = config.network.hidden, config.minibatch_size, config.num_envs
    return {
        f"square {SQUARE}": (SQUARE, SQUARE, SQUARE),
        f"layer 1 fwd, rollout [{ne},{obs_size}]@[{obs_size},{h}]": (ne, obs_size, h),
        f"layer 1 fwd, minibatch [{mb},{obs_size}]@[{obs_size},{h}]": (mb, obs_size, h),
        f"layer 1 weight grad [{obs_size},{mb}]@[{mb},{h}]": (obs_size, mb, h),
        f"layer 2 fwd, minibatch [{mb},{h}]@[{h},{h}]": (mb, h, h),
    }


def _bounds(res: dict[str, Any]) -> None:
    """(Re)compute peak and bounds from the best repeat of every measuring round in `res`."""
    best = {name: max(r["jnp"]["gflops_best"], r["numpy"]["gflops_best"]) for name, r in res["matmul_gflops"].items()}
    res["peak_gflops"] = max(best.values())  # the square, unless a network shape happens to do better
    res["network_shapes_best_gflops"] = max(v for name, v in best.items() if not name.startswith("square"))
    per_step = res["ppo_flops"]["flops_per_step"]
    res["bound_steps_per_s_at_peak"] = res["peak_gflops"] * 1e9 / per_step
    res["bound_steps_per_s_at_network_shapes"] = res["network_shapes_best_gflops"] * 1e9 / per_step


def measure_again(res: dict[str, Any]) -> None:
    """Another round of matmul timings; each rate keeps the better round, so a burst of load from
    another process during one round does not lower the bound."""
    again = matmul_rates({name: tuple(r["shape"]) for name, r in res["matmul_gflops"].items()}, res["config"]["repeats"])
    for name, r in again.items():
        for lib in ("jnp", "numpy"):
            old = res["matmul_gflops"][name][lib]
            res["matmul_gflops"][name][lib] = {k: max(old[k], r[lib][k]) for k in old}
    res["config"]["rounds"] += 1
    _bounds(res)


def run(config: PPOConfig | None = None, repeats: int = 5, view: str = "egocentric") -> dict[str, Any]:
    """FLOPs per step, attained matmul rates and the resulting steps/s bounds (no SB3 figure here).

    Args:
        config: PPO settings (default: the `fast` preset).
        repeats: Timing repeats per matmul shape.
        view: cheese-corner's observation ("egocentric" `[13, 13, 2]` or "full" `[7, 7, 3]`).
    """
    config = config or ppo_config("fast")
    spec = get_scenario(SCENARIO, view=view).spec
    obs_size = int(np.prod(spec.obs_shape))
    res: dict[str, Any] = {
        "name": "roofline",
        "config": {"scenario": SCENARIO, "view": view, "preset": "fast", "obs_size": obs_size, "repeats": repeats,
                   "rounds": 1},
        "ppo_flops": ppo_flops(config, view=view),
        "matmul_gflops": matmul_rates(network_shapes(config, obs_size), repeats),
    }
    _bounds(res)
    return res


def report(res: dict[str, Any], indent: str = "  ") -> None:
    f = res["ppo_flops"]
    print(f"{indent}roofline: {f['flops_per_step'] / 1e6:.3f} MFLOP per env step (XLA cost analysis of one unrolled "
          f"iteration, {f['flops_per_iteration'] / 1e9:.2f} GFLOP / {f['steps_per_iteration']} steps; "
          f"hand count of matmuls {f['hand_count_matmul_flops_per_step'] / 1e6:.3f}, "
          f"{100 * f['hand_count_update_share']:.0f}% in the updates)")
    for name, r in res["matmul_gflops"].items():
        print(f"{indent}  float32 matmul {name:<44} jnp {r['jnp']['gflops']:6.1f}  numpy {r['numpy']['gflops']:6.1f} GFLOP/s "
              f"(best {r['jnp']['gflops_best']:.0f}, {r['numpy']['gflops_best']:.0f})")
    print(f"{indent}  bound (best of {res['config']['rounds']} x {res['config']['repeats']} repeats): {res['peak_gflops']:.0f} GFLOP/s peak / FLOPs per step = "
          f"{fmt_rate(res['bound_steps_per_s_at_peak'])} steps/s; at the network's shapes "
          f"({res['network_shapes_best_gflops']:.0f} GFLOP/s) {fmt_rate(res['bound_steps_per_s_at_network_shapes'])} steps/s")


if __name__ == "__main__":
    print(f"== PPO roofline, {SCENARIO}, fast preset ==")
    report(run())
    sys.exit(0)
