"""Measure time vs number of states: EPIC distances and maximum-causal-entropy IRL, against NumPy.

Levels: cheese-corner perfect mazes filling a G x G grid (`get_scenario("cheese-corner-v0")
.with_params(grid_size=G, maze_sizes=(G,))`), so `S = G*G + 1` tabular states.

EPIC: `epic_distance_decomposed` (the closed form the audit uses, O(S A) memory) between the base
objective and the corner objective on a batch of 64 levels, jitted, compile excluded; for small levels
also the dense `epic_distance` on `[S, A, S]` rewards (O(S^2 A) memory), which it must agree with.

MCE IRL: `mesascope.measures.mce_irl.mce_irl` (exact occupancies and soft value iteration, Adam) on 8 levels,
a fixed number of Adam steps, the demonstrations being the soft-optimal policy of a known reward.

Peer: the optional peer would be `imitation`'s tabular MCE IRL (`imitation.algorithms.mce_irl`). It pins
old stable-baselines3/gymnasium versions and pulls in about 745 MB (DESIGN.md), which the project's venv
cannot take and this machine's disk budget does not justify for one number, so it is NOT installed or
compared here. Instead the same algorithm (same soft Bellman backup with terminal values fixed at 0 and
the same tolerance, the same occupancy iteration with warm starts, the same Adam with cosine decay) is
written in plain NumPy below and timed in alternation with the JAX version; the fitted weights are
checked to agree.

Run alone: `.venv/bin/python benchmarks/bench_measures.py`.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax
import jax.numpy as jnp

from mesascope.levels import tabularize
from mesascope.measures.epic import epic_distance, epic_distance_decomposed
from mesascope.measures.mce_irl import mce_irl, soft_value_iteration
from mesascope.scenarios import get_scenario
from mesascope.solve.dp import DEFAULT_TOL

from _common import median, timed

EPIC_SIZES = (7, 13, 25, 49)
DENSE_MAX_STATES = 700
EPIC_LEVELS = 64
IRL_SIZES = (7, 9, 13)
IRL_LEVELS = 8
IRL_STEPS = 100
IRL_LR = 0.1
IRL_L2 = 1e-3


def _levels(grid: int, n: int, key: jax.Array):
    scenario = get_scenario("cheese-corner-v0").with_params(grid_size=grid, maze_sizes=(grid,))
    levels = scenario.sample_levels(key, n, "deploy")
    tab = jax.jit(jax.vmap(lambda lv: tabularize(scenario.spec, lv)))(levels)
    return scenario, jax.block_until_ready(tab)


# ------------------------------------------------------------------------------------------ NumPy MCE


def numpy_mce_irl(next_state: np.ndarray, features: np.ndarray, start: np.ndarray, terminal: np.ndarray,
                  probs: np.ndarray, gamma: float, steps: int, lr: float, l2: float,
                  tol: float = DEFAULT_TOL) -> np.ndarray:
    """The algorithm of `mesascope.measures.mce_irl.mce_irl` in NumPy (float32), batched over `L` levels.

    Args: next_state int `[L, S, A]`, features `[L, S, A, K]`, start int `[L]`, terminal bool `[L, S]`,
    probs `[L, S, A]`. Returns the fitted weights `[K]`.
    """
    n_levels, s, a = next_state.shape
    k = features.shape[-1]
    g32 = np.float32(gamma)
    flat = (next_state + (np.arange(n_levels) * s)[:, None, None]).reshape(-1)
    e0 = np.zeros((n_levels, s), np.float32)
    e0[np.arange(n_levels), start] = 1.0
    live = ~terminal

    def soft_values(reward: np.ndarray, v: np.ndarray) -> np.ndarray:
        scale = max((np.abs(reward).max() + math.log(a)) / (1.0 - gamma), 1e-12)
        for _ in range(20_000):
            q = reward + g32 * v.reshape(-1)[flat].reshape(n_levels, s, a)
            m = q.max(-1)
            v_new = np.where(live, m + np.log(np.exp(q - m[..., None]).sum(-1)), 0.0).astype(np.float32)
            delta = np.abs(v_new - v).max()
            v = v_new
            if delta <= tol * scale:
                break
        return v

    def occupancy(policy: np.ndarray, d: np.ndarray) -> np.ndarray:
        for _ in range(20_000):
            flow = (d[..., None] * policy).reshape(-1)
            d_new = e0 + g32 * np.bincount(flat, weights=flow, minlength=n_levels * s).reshape(n_levels, s).astype(np.float32)
            delta = np.abs(d_new - d).max()
            d = d_new
            if delta <= tol / (1.0 - gamma):
                break
        return d * (1.0 / (1.0 - gamma)) / d.sum(-1, keepdims=True)

    d_demo = occupancy(probs, e0.copy())
    mu_demo = np.where(live[..., None], d_demo[..., None] * probs, 0.0)
    demo_f = np.einsum("lsa,lsak->k", mu_demo, features) / n_levels
    n_steps = max(mu_demo.sum((-2, -1)).mean(), 1e-12)

    w = np.zeros(k, np.float32)
    m1, m2 = np.zeros(k), np.zeros(k)
    v, d = np.zeros((n_levels, s), np.float32), e0.copy()
    for t in range(steps):
        v = soft_values(features @ w, v)
        q = features @ w + g32 * v.reshape(-1)[flat].reshape(n_levels, s, a)
        pol = np.exp(q - q.max(-1, keepdims=True))
        pol /= pol.sum(-1, keepdims=True)
        d = occupancy(pol, d)
        mu = np.where(live[..., None], d[..., None] * pol, 0.0)
        model_f = np.einsum("lsa,lsak->k", mu, features) / n_levels
        grad = -((demo_f - model_f) / n_steps - l2 * w)
        # optax.adam with optax.cosine_decay_schedule(lr, steps, alpha=0.01)
        step_lr = lr * (0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, steps) / steps)) + 0.01)
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad**2
        mhat, vhat = m1 / (1 - 0.9 ** (t + 1)), m2 / (1 - 0.999 ** (t + 1))
        w = (w - step_lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
    return w


# ------------------------------------------------------------------------------------------ benchmarks


def run_epic(sizes: tuple[int, ...] = EPIC_SIZES, repeats: int = 5) -> list[dict[str, Any]]:
    rows = []
    for grid in sizes:
        scenario, tab = _levels(grid, EPIC_LEVELS, jax.random.key(grid))
        gamma = scenario.spec.gamma
        names, weights = scenario.weight_matrix()
        ra = tab.features @ jnp.asarray(weights[names.index("base")])
        rb = tab.features @ jnp.asarray(weights[names.index("corner")])
        zeros = jnp.zeros(tab.terminal.shape, jnp.float32)
        # The zero s'-parts are arguments, not closed-over constants (XLA would constant-fold them slowly).
        fast_fn = jax.jit(lambda a, za, b, zb: epic_distance_decomposed(a, za, b, zb, gamma=gamma))
        fast = lambda a, b: fast_fn(a, zeros, b, zeros)  # noqa: E731
        compile_s = timed(lambda: jax.block_until_ready(fast(ra, rb)))
        row: dict[str, Any] = {"grid": grid, "states": scenario.spec.n_states, "compile_s": compile_s}
        s = scenario.spec.n_states
        dense = None
        if s <= DENSE_MAX_STATES:
            # R(s, a, s') is r[s, a] on the one successor s' reaches and the same value elsewhere (the
            # decomposed form's convention: the reward does not depend on s' beyond (s, a)).
            dense_a = jnp.broadcast_to(ra[..., None], ra.shape + (s,))
            dense_b = jnp.broadcast_to(rb[..., None], rb.shape + (s,))
            dense = jax.jit(jax.vmap(lambda x, y: epic_distance(x, y, gamma=gamma)))
            jax.block_until_ready(dense(dense_a, dense_b))
        t_fast, t_dense = [], []
        for _ in range(repeats):
            t_fast.append(timed(lambda: jax.block_until_ready(fast(ra, rb))))
            if dense is not None:
                t_dense.append(timed(lambda: jax.block_until_ready(dense(dense_a, dense_b))))
        row["decomposed_ms_per_level"] = median(t_fast) * 1e3 / EPIC_LEVELS
        if dense is not None:
            row["dense_ms_per_level"] = median(t_dense) * 1e3 / EPIC_LEVELS
            row["max_abs_diff_dense"] = float(np.abs(np.asarray(fast(ra, rb)) - np.asarray(dense(dense_a, dense_b))).max())
        rows.append(row)
    return rows


def run_irl(sizes: tuple[int, ...] = IRL_SIZES, repeats: int = 2) -> list[dict[str, Any]]:
    rows = []
    for grid in sizes:
        scenario, tab = _levels(grid, IRL_LEVELS, jax.random.key(100 + grid))
        gamma = scenario.spec.gamma
        k = tab.features.shape[-1]
        w_true = jnp.asarray(np.random.default_rng(grid).normal(size=k), jnp.float32)
        probs = jax.vmap(lambda ns, ft, t: soft_value_iteration(ns, ft @ w_true, gamma, terminal=t).policy)(
            tab.next_state, tab.features, tab.terminal
        )
        fit = lambda: jax.block_until_ready(mce_irl(tab, probs, gamma=gamma, steps=IRL_STEPS, lr=IRL_LR, l2=IRL_L2).weights)  # noqa: E731
        compile_s = timed(fit)
        args = [np.asarray(x) for x in (tab.next_state, tab.features, tab.start, tab.terminal, probs)]
        np_fit = lambda: numpy_mce_irl(*args, gamma, IRL_STEPS, IRL_LR, IRL_L2)  # noqa: E731
        t_jax, t_np = [], []
        for _ in range(repeats):
            t_jax.append(timed(fit))
            t_np.append(timed(np_fit))
        w_jax, w_np = np.asarray(fit()), np_fit()
        rows.append({
            "grid": grid,
            "states": scenario.spec.n_states,
            "levels": IRL_LEVELS,
            "adam_steps": IRL_STEPS,
            "jax_s": median(t_jax),
            "numpy_s": median(t_np),
            "speedup_vs_numpy": median(t_np) / median(t_jax),
            "compile_s": compile_s,
            "max_abs_weight_diff": float(np.abs(w_jax - w_np).max()),
            "weight_scale": float(np.abs(w_jax).max()),
        })
    return rows


def run() -> dict[str, Any]:
    epic = run_epic()
    irl = run_irl()
    ratios = [r["speedup_vs_numpy"] for r in irl]
    return {
        "name": "measures",
        "config": {"epic_sizes": list(EPIC_SIZES), "epic_levels": EPIC_LEVELS, "irl_sizes": list(IRL_SIZES),
                   "irl_levels": IRL_LEVELS, "irl_adam_steps": IRL_STEPS,
                   "peer": "plain NumPy MCE IRL written here (imitation not installed: see module docstring)"},
        "epic": epic,
        "irl": irl,
        "ratio": float(np.median(ratios)),
        "ratio_min": float(min(ratios)),
        "ratio_max": float(max(ratios)),
    }


def report(res: dict[str, Any]) -> None:
    print(f"== EPIC, batch of {res['config']['epic_levels']} maze levels, median (compile excluded) ==")
    print(f"  {'grid':>5} {'states':>7} {'closed form ms/lvl':>19} {'dense ms/lvl':>13} {'|d diff|':>9}")
    for r in res["epic"]:
        dense = f"{r['dense_ms_per_level']:>13.3f}" if "dense_ms_per_level" in r else f"{'(too big)':>13}"
        diff = f"{r['max_abs_diff_dense']:>9.1e}" if "max_abs_diff_dense" in r else f"{'-':>9}"
        print(f"  {r['grid']:>3}x{r['grid']:<2}{r['states']:>7} {r['decomposed_ms_per_level']:>19.3f} {dense} {diff}")
    print(f"== MCE IRL, {res['config']['irl_levels']} levels, {res['config']['irl_adam_steps']} Adam steps, "
          "median (compile excluded), vs the same algorithm in NumPy ==")
    print(f"  {'grid':>5} {'states':>7} {'JAX s':>8} {'NumPy s':>8} {'speedup':>8} {'compile s':>10} {'|dw|':>8}")
    for r in res["irl"]:
        print(f"  {r['grid']:>3}x{r['grid']:<2}{r['states']:>7} {r['jax_s']:>8.3f} {r['numpy_s']:>8.3f} "
              f"{r['speedup_vs_numpy']:>7.1f}x {r['compile_s']:>10.1f} {r['max_abs_weight_diff']:>8.1e}")
    print(f"  MCE IRL speedup vs NumPy: median {res['ratio']:.1f}x (range {res['ratio_min']:.1f}-{res['ratio_max']:.1f}x)")
    print("  peer: imitation's MCE IRL not installed (pins old SB3/gymnasium, ~745 MB); compared with NumPy instead")


if __name__ == "__main__":
    report(run())
    sys.exit(0)
