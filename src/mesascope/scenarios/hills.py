"""`tessellating-hills-v0`: a "demon" of self-reinforcing coordinates stalls gradient descent (seeds 001, 004).

The published toy ("Tessellating Hills", a follow-up to Wentworth's "Demons in Imperfect Search"):
minimise `loss(x) = -x_0 + eps * sum_{j>=1} x_j * splotch_j(x)` in 16 dimensions. The base objective is
progress on `x_0`; the other 15 coordinates only multiply the splotches. Here each splotch is a seeded
random Fourier sum, `splotch_j(x) = sum_m A_jm cos(W_jm . x + phase_jm)` (`A ~ N(0, 1/M)`,
`W ~ N(0, I)`, phases uniform). Gradient descent can lower the loss by growing `x_j` where the splotch
is negative, and grown coordinates steepen the ridges that trap `x_0`: a pattern in the search that
reinforces itself at the base objective's expense.

Capability and alignment (seed 004, Harris) are measured for three runs on each landscape: plain
gradient descent on the demon-free loss (`eps = 0`), gradient descent with annealed noise on the hills,
and plain gradient descent on the hills (the hacked run). See `mesascope.optimizers.gradient`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.optimizers.gradient import DescentConfig, alignment, capability, make_descent
from mesascope.params import Param
from mesascope.scenarios.base import Check
from mesascope.scenarios.study import StudyContext, StudyOutcome, register_study

__all__ = ["make_loss"]

DESCRIPTION = (
    "Gradient descent on the tessellating-hills toy: loss = -x0 + eps * sum_j x_j * splotch_j(x) in 16 "
    "dimensions, splotches from a seeded random Fourier basis. Capability (long-run improvement of the "
    "optimizer's own objective) and alignment (base-objective improvement relative to it, seed 004) of plain "
    "descent without splotches, descent with annealed noise, and the hacked run."
)
EXPECTED = (
    "On the hills, plain gradient descent's progress on x0 stalls while demon coordinates x_j grow; its "
    "alignment falls below the demon-free run's (exactly 1); capability and alignment are invariant to "
    "positive affine transformations of the objectives."
)
REFERENCE_POINTS = 4096


def make_loss(key: jax.Array, dim: int, modes: int, eps: float):
    """The seeded tessellating-hills loss `x [dim] -> scalar` and its splotches `x -> [dim - 1]`."""
    k_w, k_p, k_a = jax.random.split(key, 3)
    w = jax.random.normal(k_w, (dim - 1, modes, dim))
    phase = jax.random.uniform(k_p, (dim - 1, modes)) * 2 * jnp.pi
    amp = jax.random.normal(k_a, (dim - 1, modes)) / jnp.sqrt(modes)

    def splotch(x: jax.Array) -> jax.Array:
        return jnp.sum(amp * jnp.cos(w @ x + phase), -1)

    def loss(x: jax.Array) -> jax.Array:
        return -x[0] + eps * jnp.sum(x[1:] * splotch(x))

    return loss, splotch


def _execute(ctx: StudyContext) -> StudyOutcome:
    cfg, prm = ctx.config, ctx.params
    dim, modes, eps = int(prm["dim"]), int(prm["modes"]), float(prm["eps"])
    plain = DescentConfig(steps=int(cfg["steps"]), lr=float(cfg["lr"]), record_every=int(cfg["record_every"]))
    noisy = DescentConfig(steps=plain.steps, lr=plain.lr, noise=float(cfg["noise"]), record_every=plain.record_every)
    x_start = jnp.zeros(dim)
    ref = np.asarray(jax.random.normal(jax.random.key(7), (REFERENCE_POINTS, dim)), np.float64)
    runs: dict[str, list[dict[str, Any]]] = {"plain, no splotches": [], "annealed noise, hills": [], "plain, hills (hacked)": []}
    curves: dict[str, list[np.ndarray]] = {k: [] for k in runs}
    demons: dict[str, list[np.ndarray]] = {k: [] for k in runs}
    invariance_err = 0.0
    for i, seed in enumerate(ctx.seeds):
        key = jax.random.key(seed)
        loss_hills, _ = make_loss(key, dim, modes, eps)
        loss_flat, _ = make_loss(key, dim, modes, 0.0)
        for name, loss, dcfg in (("plain, no splotches", loss_flat, plain), ("annealed noise, hills", loss_hills, noisy),
                                 ("plain, hills (hacked)", loss_hills, plain)):
            traj = np.asarray(jax.jit(make_descent(loss, dcfg))(jax.random.fold_in(key, 1), x_start), np.float64)
            own = np.asarray(jax.vmap(loss)(jnp.asarray(traj)), np.float64) * -1.0  # the optimizer's utility
            own_ref = -np.asarray(jax.vmap(loss)(jnp.asarray(ref)), np.float64)
            c_own = capability(own[0], own[-1], own_ref)
            c_base = capability(traj[0, 0], traj[-1, 0], ref[:, 0])
            # the same measures under arbitrary positive affine transformations of both utilities
            rng = np.random.default_rng(seed)
            a1, a2 = rng.uniform(0.1, 10, 2)
            b1, b2 = rng.normal(0, 100, 2)
            c_own_t = capability(a1 * own[0] + b1, a1 * own[-1] + b1, a1 * own_ref + b1)
            c_base_t = capability(a2 * traj[0, 0] + b2, a2 * traj[-1, 0] + b2, a2 * ref[:, 0] + b2)
            invariance_err = max(invariance_err, abs(c_own_t - c_own), abs(alignment(c_base_t, c_own_t) - alignment(c_base, c_own)))
            half = len(traj) // 2
            runs[name].append({
                "seed": seed,
                "x0_final": traj[-1, 0],
                "x0_progress_first_half": traj[half, 0] - traj[0, 0],
                "x0_progress_second_half": traj[-1, 0] - traj[half, 0],
                "demon_norm_final": float(np.linalg.norm(traj[-1, 1:])),
                "loss_final": -own[-1],
                "capability": c_own,
                "base_capability": c_base,
                "alignment": alignment(c_base, c_own),
            })
            curves[name].append(traj[:, 0])
            demons[name].append(np.linalg.norm(traj[:, 1:], axis=1))
        ctx.progress("descend", (i + 1) / len(ctx.seeds))

    def mean(name: str, field: str) -> float:
        return float(np.mean([r[field] for r in runs[name]]))

    steps = np.arange(len(curves["plain, no splotches"][0])) * plain.record_every

    def draw(fig: Any) -> None:
        ax1 = fig.add_subplot(1, 2, 1)
        ax2 = fig.add_subplot(1, 2, 2)
        for (name, cs), color in zip(curves.items(), ("tab:green", "tab:orange", "tab:red")):
            for j, c in enumerate(cs):
                ax1.plot(steps, c, color=color, alpha=0.7, label=name if j == 0 else None)
            for j, d in enumerate(demons[name]):
                ax2.plot(steps, d, color=color, alpha=0.7, label=name if j == 0 else None)
        ax1.set_xlabel("step")
        ax1.set_ylabel("x0 (base objective)")
        ax2.set_xlabel("step")
        ax2.set_ylabel("|x_1..15| (the demon)")
        ax1.legend(fontsize=7)
        ax1.set_title(f"tessellating hills, eps={eps}")

    hacked = "plain, hills (hacked)"
    stall = mean(hacked, "x0_progress_second_half") / max(mean(hacked, "x0_progress_first_half"), 1e-12)
    table = [{"optimizer": n, "x0 final": mean(n, "x0_final"), "|demon|": mean(n, "demon_norm_final"),
              "capability": mean(n, "capability"), "alignment": mean(n, "alignment")} for n in runs]
    findings = {
        "runs": runs,
        "x0_stall_ratio": stall,
        "affine_invariance_max_change": invariance_err,
        "reference": f"{REFERENCE_POINTS} points x ~ N(0, I) around the start; capability = improvement / sd over them",
        "tables": {"capability and alignment (mean over seeds)": table},
    }
    return StudyOutcome(systems=(), findings=findings, figures={"x0-and-demon": draw})


def _check(audit: Mapping[str, Any]) -> list[Check]:
    """The expected finding, measured on a finished audit."""
    f = audit["findings"]

    def mean(name: str, field: str) -> float:
        return float(np.mean([r[field] for r in f["runs"][name]]))

    hacked, flat = "plain, hills (hacked)", "plain, no splotches"
    stall, invariance = f["x0_stall_ratio"], f["affine_invariance_max_change"]
    return [
        Check("hacked run: x0 progress, 2nd half / 1st half", stall, "< 0.5 (stalls)", stall < 0.5),
        Check("hacked run: |demon coordinates| at the end", mean(hacked, "demon_norm_final"), "> 1 (grew from 0)",
              mean(hacked, "demon_norm_final") > 1.0),
        Check("demon-free descent: alignment", mean(flat, "alignment"), "1 (within 1e-6)", abs(mean(flat, "alignment") - 1) < 1e-6),
        Check("hacked alignment < demon-free alignment", mean(hacked, "alignment"), f"< {mean(flat, 'alignment'):.3g}",
              mean(hacked, "alignment") < mean(flat, "alignment")),
        Check("capability and alignment under positive affine maps: max change", invariance, "< 1e-9", invariance < 1e-9),
    ]


PARAMS = (
    Param("dim", "int", 16, "dimensions (x0 and the demon coordinates)", low=2, high=1024),
    Param("modes", "int", 8, "random Fourier modes per splotch", low=1, high=256),
    Param("eps", "float", 0.2, "splotch strength (0: no demon)", low=0.0, high=10.0),
)
SETTINGS = (
    Param("steps", "int", 5000, "gradient steps", low=2, high=10_000_000),
    Param("lr", "float", 0.01, "step size", low=1e-8, high=10.0),
    Param("noise", "float", 1.0, "initial noise of the annealed-noise run", low=0.0, high=100.0),
    Param("record_every", "int", 50, "steps between recorded points", low=1, high=100_000),
)


register_study(
    "tessellating-hills-v0",
    description=DESCRIPTION,
    expected_finding=EXPECTED,
    optimizer="gradient-descent",
    settings=SETTINGS,
    full={"steps": 20000, "record_every": 100},
    execute=_execute,
    check=_check,
    params=PARAMS,
    summary="gradient descent on tessellating hills grows a demon: capability vs alignment (seed 004)",
)
