"""Exact solver time vs number of states: jitted value iteration and policy evaluation, against NumPy.

Levels: cheese-corner perfect mazes filling a G x G grid (`get_scenario("cheese-corner-v0")
.with_params(grid_size=G, maze_sizes=(G,))`), G from 9 to 49, so `S = G*G + 1` tabular states. Mazes are
the hard case for value iteration: the number of sweeps grows with the longest path to the cheese. Each
size is a batch of 64 levels; the reward is the scenario's base objective.

mesascope: `jit(vmap(value_iteration))` and `jit(vmap(policy_evaluation))` (the uniform policy) from
`mesascope.solve.dp`, compile time measured on the first call and excluded. Up to `DENSE_MAX_STATES` states both finish
with a dense linear solve, above it they iterate to the relative tolerance 1e-6.

NumPy: the same algorithm (same backup, same per-level stopping rule with converged levels frozen, as a
vmapped `while_loop` does, same dense finish), vectorised over the 64 levels, float32.
Values are checked to agree with the JAX ones.

Run alone: `.venv/bin/python benchmarks/bench_solver.py`.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax
import jax.numpy as jnp

from mesascope.levels import tabularize
from mesascope.scenarios import get_scenario
from mesascope.solve.dp import DEFAULT_MAX_ITERS, DEFAULT_TOL, DENSE_MAX_STATES, policy_evaluation, uniform_policy, value_iteration

from _common import median, timed

SIZES = (9, 17, 25, 33, 41, 49)
N_LEVELS = 64


def numpy_value_iteration(next_state: np.ndarray, reward: np.ndarray, gamma: float, tol: float = DEFAULT_TOL,
                          max_iters: int = DEFAULT_MAX_ITERS) -> tuple[np.ndarray, int]:
    """Batched value iteration in NumPy: `next_state` int `[L, S, A]`, `reward` float32 `[L, S, A]`.

    Returns `(v [L, S], sweeps)`. Mirrors `mesascope.solve.dp.value_iteration` under `vmap`.
    """
    n_levels, s, _ = reward.shape
    gamma32 = np.float32(gamma)
    flat_next = next_state + (np.arange(n_levels) * s)[:, None, None]
    threshold = tol * np.maximum(np.abs(reward).max(axis=(1, 2)) / (1.0 - gamma), 1e-12)
    v = np.zeros((n_levels, s), np.float32)
    active = np.ones(n_levels, bool)
    sweeps = 0
    while active.any() and sweeps < max_iters:
        v_new = (reward + gamma32 * v.ravel()[flat_next]).max(-1)
        delta = np.abs(v_new - v).max(-1)
        v = np.where(active[:, None], v_new, v)
        active &= delta > threshold
        sweeps += 1
    if s <= DENSE_MAX_STATES:
        q = reward + gamma32 * v.ravel()[flat_next]
        best = q.argmax(-1)
        rows = np.arange(s)
        p = np.zeros((n_levels, s, s), np.float32)
        succ = np.take_along_axis(next_state, best[..., None], -1)[..., 0]
        lv = np.arange(n_levels)[:, None]
        p[lv, rows[None, :], succ] = 1.0
        r_pi = np.take_along_axis(reward, best[..., None], -1)[..., 0]
        v = np.linalg.solve(np.eye(s, dtype=np.float32) - gamma32 * p, r_pi[..., None])[..., 0]
    return v, sweeps


def _levels(grid: int, key: jax.Array):
    scenario = get_scenario("cheese-corner-v0").with_params(grid_size=grid, maze_sizes=(grid,))
    spec = scenario.spec
    levels = scenario.sample_levels(key, N_LEVELS, "train")
    mdp = jax.jit(jax.vmap(lambda lv: tabularize(spec, lv)))(levels)
    w = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))
    reward = mdp.features @ w
    return spec, jax.block_until_ready(mdp.next_state), jax.block_until_ready(reward)


def run(sizes: tuple[int, ...] = SIZES, repeats: int = 3) -> dict[str, Any]:
    rows = []
    for grid in sizes:
        spec, next_state, reward = _levels(grid, jax.random.key(grid))
        gamma = spec.gamma
        vi = jax.jit(jax.vmap(lambda ns, r: value_iteration(ns, r, gamma).v))
        pe = jax.jit(jax.vmap(lambda ns, r: policy_evaluation(ns, r, uniform_policy(ns), gamma)))
        vi_compile = timed(lambda: jax.block_until_ready(vi(next_state, reward)))
        pe_compile = timed(lambda: jax.block_until_ready(pe(next_state, reward)))
        ns_np, r_np = np.asarray(next_state), np.asarray(reward)
        numpy_value_iteration(ns_np, r_np, gamma)  # warm-up (allocations, BLAS threads)
        t_vi, t_pe, t_np = [], [], []
        for _ in range(repeats):  # alternate the contenders within each round
            t_vi.append(timed(lambda: jax.block_until_ready(vi(next_state, reward))))
            t_pe.append(timed(lambda: jax.block_until_ready(pe(next_state, reward))))
            t_np.append(timed(lambda: numpy_value_iteration(ns_np, r_np, gamma)))
        v_jax = np.asarray(vi(next_state, reward))
        v_np, sweeps = numpy_value_iteration(ns_np, r_np, gamma)
        per = 1e3 / N_LEVELS
        rows.append({
            "grid": grid,
            "states": spec.n_states,
            "sweeps": sweeps,
            "dense_finish": spec.n_states <= DENSE_MAX_STATES,
            "vi_ms_per_level": median(t_vi) * per,
            "pe_ms_per_level": median(t_pe) * per,
            "numpy_vi_ms_per_level": median(t_np) * per,
            "vi_speedup_vs_numpy": median(t_np) / median(t_vi),
            "vi_compile_s": vi_compile,
            "pe_compile_s": pe_compile,
            "max_abs_diff_vs_numpy": float(np.abs(v_jax - v_np).max()),
        })
    ratios = [r["vi_speedup_vs_numpy"] for r in rows]
    return {
        "name": "solver",
        "config": {"sizes": list(sizes), "levels_per_batch": N_LEVELS, "repeats": repeats, "dtype": "float32",
                   "levels": "cheese-corner perfect mazes filling the grid"},
        "table": rows,
        "ratio": float(np.median(ratios)),
        "ratio_min": float(min(ratios)),
        "ratio_max": float(max(ratios)),
    }


def report(res: dict[str, Any]) -> None:
    print(f"== exact solver, batch of {res['config']['levels_per_batch']} maze levels, median of "
          f"{res['config']['repeats']} (compile excluded) ==")
    print(f"  {'grid':>5} {'states':>7} {'sweeps':>6} {'VI ms/lvl':>10} {'NumPy VI':>10} {'speedup':>8} "
          f"{'PE ms/lvl':>10} {'compile VI/PE s':>16} {'|dV|':>8}")
    for r in res["table"]:
        dense = "*" if r["dense_finish"] else " "
        print(f"  {r['grid']:>3}x{r['grid']:<2}{r['states']:>7}{dense}{r['sweeps']:>6} {r['vi_ms_per_level']:>10.3f} "
              f"{r['numpy_vi_ms_per_level']:>10.3f} {r['vi_speedup_vs_numpy']:>7.1f}x {r['pe_ms_per_level']:>10.3f} "
              f"{r['vi_compile_s']:>8.1f}/{r['pe_compile_s']:<7.1f} {r['max_abs_diff_vs_numpy']:>8.1e}")
    print(f"  * <= {DENSE_MAX_STATES} states: finished by a dense linear solve (both implementations)")
    print(f"  VI speedup vs NumPy: median {res['ratio']:.1f}x (range {res['ratio_min']:.1f}-{res['ratio_max']:.1f}x)")


if __name__ == "__main__":
    report(run())
    sys.exit(0)
