"""`greedy-genes-v0`: a meiotic-drive allele hacks the genetic algorithm's search (seed 001, SPEC.md §8).

Seed 001 (Wentworth) names greedy genes as the prototype of a true inner alignment failure: an inner
part of the system exploits the outer optimizer's imperfect search. Here the outer optimizer is a
fitness-proportional, sexually recombining genetic algorithm (a diploid Wright-Fisher population,
`mesascope.optimizers.evolution.make_wright_fisher`); the base objective is viability. A driving
allele `D` costs fitness (`DD` viability `1 - s`, `Dd` viability `1 - h s`) but wins `(1 + k) / 2` of
the gametes of heterozygotes. The global optimum of the base objective is the driver-free population
(mean fitness 1), yet the search settles at the drive equilibrium `p*` with mean fitness below 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import jax
import numpy as np

from mesascope.measures.measurements import Measurements, Witness
from mesascope.optimizers.evolution import (
    DriveConfig,
    drive_equilibrium,
    drive_invades,
    drive_recursion,
    make_wright_fisher,
)
from mesascope.params import Param
from mesascope.scenarios.base import Check
from mesascope.scenarios.study import StudyContext, StudyOutcome, StudySystem, register_study

__all__ = ["mean_fitness"]

DESCRIPTION = (
    "One diploid locus evolved by a fitness-proportional, sexually recombining genetic algorithm "
    "(individual-based Wright-Fisher, vmapped over replicate populations). Allele D costs viability "
    "(DD: 1-s, Dd: 1-hs) but Dd parents pass it on with probability (1+k)/2 (meiotic drive, seed 001's "
    "'greedy genes'). Compared with the infinite-population recursion and its closed-form equilibrium."
)
EXPECTED = (
    "D invades iff (1-hs)(1+k) > 1 and settles at p* = ((1+k)(1-hs)-1)/(s(1-2h)) (k/s for a recessive cost), "
    "lowering mean fitness below the driver-free optimum: the search is hacked (an inner failure "
    "through imperfect optimization in Wentworth's terms)."
)


def mean_fitness(p: np.ndarray, cfg: DriveConfig) -> np.ndarray:
    """Mean viability of Hardy-Weinberg zygotes at driver frequency `p` (any shape)."""
    w0, w1, w2 = cfg.viabilities()
    q = 1.0 - p
    return p * p * w2 + 2 * p * q * w1 + q * q * w0


def _execute(ctx: StudyContext) -> StudyOutcome:
    prm, cfg_in = ctx.params, ctx.config
    cfg = DriveConfig(
        k=float(prm["k"]), s=float(prm["s"]), h=float(prm["h"]), p0=float(prm["p0"]),
        n=int(cfg_in["n"]), generations=int(cfg_in["generations"]),
    )
    reps = int(cfg_in["replicates_per_seed"])
    p_star = drive_equilibrium(cfg)
    recursion = drive_recursion(cfg, generations=int(cfg_in["recursion_generations"]))
    ctx.progress("simulate", 0.0)
    simulate = jax.jit(jax.vmap(make_wright_fisher(cfg)))
    trajectories = []
    for i, seed in enumerate(ctx.seeds):
        keys = jax.random.split(jax.random.key(seed), reps)
        trajectories.append(np.asarray(simulate(keys), np.float64))
        ctx.progress("simulate", (i + 1) / len(ctx.seeds))
    traj = np.concatenate(trajectories)  # [R, G + 1]
    burn = cfg.generations // 2
    per_rep = traj[:, burn:].mean(1)  # each replicate's time-averaged frequency after burn-in
    sim_mean = float(per_rep.mean())
    sim_se = float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))) if len(per_rep) > 1 else float("nan")
    w_eq = float(mean_fitness(np.asarray(p_star), cfg))
    w_sim = float(mean_fitness(traj[:, burn:], cfg).mean())
    no_drive = replace(cfg, k=0.0)
    no_drive_final = float(drive_recursion(no_drive, generations=int(cfg_in["recursion_generations"]))[-1])
    rec_final = float(recursion[-1])
    gap = 1.0 - w_sim  # fitness lost to the driver; the optimum (driver-free) has mean viability 1

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        g = np.arange(cfg.generations + 1)
        for row in traj[: min(len(traj), 24)]:
            ax.plot(g, row, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(g, recursion[: cfg.generations + 1], color="k", lw=2, label="infinite-population recursion")
        ax.axhline(p_star, color="tab:red", ls="--", label=f"closed form p* = {p_star:.3f}")
        ax.set_xlabel("generation")
        ax.set_ylabel("frequency of the driving allele D")
        ax.set_title(f"meiotic drive k={cfg.k}, cost s={cfg.s}, h={cfg.h}, N={cfg.n}")
        ax.legend(loc="lower right")

    # J (SPEC.md section 2) of a population by its mean viability: 1 for the best population (no D),
    # 0 for the "uniform" reference, a coin-flip allele at the locus (p = 1/2 in Hardy-Weinberg)
    w_half = float(mean_fitness(np.asarray(0.5), cfg))

    def j(w: float) -> float:
        return (w - w_half) / (1.0 - w_half)

    systems = []
    for i, seed in enumerate(ctx.seeds):
        block = traj[i * reps : (i + 1) * reps, burn:]
        j_pop = j(float(mean_fitness(block, cfg).mean()))
        m = Measurements(
            system=f"seed-{seed}", has_mesa_objective=False,
            # no distribution shift here: deployment is the same world, and the base objective is the intent
            j_base_train=j_pop, j_intended_train=j_pop, j_base_deploy=j_pop, j_intended_deploy=j_pop,
            worst_j_intended_base_optimal_deploy=1.0, worst_j_intended_base_optimal_train=1.0,
            training_optimality_gap=1.0 - j_pop,
            witnesses=(Witness("driver-free population", "frequency of D = 0: the unique fitness optimum", 0.0, 1.0, 1.0),
                       Witness("evolved population", f"D at frequency {block.mean():.3f} (meiotic drive)", 1.0 - j_pop, j_pop, j_pop, trained=True)),
            notes={"J": "mean viability normalised: 1 = driver-free, 0 = a coin-flip allele (p = 1/2)",
                   "driver_frequency": float(block.mean())},
        )
        systems.append(StudySystem(seed, m))
    findings = {
        "closed_form": {
            "p_star": p_star,
            "invades": drive_invades(cfg),
            "invasion_product": (1 - cfg.h * cfg.s) * (1 + cfg.k),
            "formula": "p* = ((1+k)(1-hs) - 1) / (s (1-2h)); D invades iff (1-hs)(1+k) > 1; "
            "d invades iff (1-hs)(1-k) > 1-s",
            "mean_fitness_at_p_star": w_eq,
        },
        "recursion_final": rec_final,
        "simulation": {
            "replicates": int(len(per_rep)), "mean_frequency": sim_mean, "standard_error": sim_se,
            "mean_fitness": w_sim, "burn_in": burn, "population": cfg.n,
            "final_frequencies": traj[:, -1].tolist(),
        },
        "no_drive_control_final": no_drive_final,
        "search_hacked_gap": gap,
    }
    return StudyOutcome(systems=tuple(systems), findings=findings, figures={"drive-frequency": draw})


def _check(audit: Mapping[str, Any]) -> list[Check]:
    """The expected finding, measured on a finished audit."""
    f = audit["findings"]
    p_star, sim = f["closed_form"]["p_star"], f["simulation"]
    se = sim["standard_error"] if sim["standard_error"] is not None else float("nan")
    tol = 3.0 * se + 2.0 / sim["population"]  # three standard errors plus the O(1/N) drift bias
    labels = [s["verdicts"]["wentworth"]["label"] for s in audit["systems"]]
    return [
        Check("invasion condition (1-hs)(1+k) > 1", f["closed_form"]["invasion_product"], "> 1", f["closed_form"]["invades"]),
        Check("recursion equilibrium - closed form p*", f["recursion_final"] - p_star, "|.| < 1e-3",
              abs(f["recursion_final"] - p_star) < 1e-3),
        Check("simulated mean frequency - p*", sim["mean_frequency"] - p_star, f"|.| < 3 SE + 2/N = {tol:.2g} (SE {se:.2g})",
              abs(sim["mean_frequency"] - p_star) < tol),
        Check("mean fitness at p* (driver-free optimum: 1)", f["closed_form"]["mean_fitness_at_p_star"], "< 1",
              f["closed_form"]["mean_fitness_at_p_star"] < 1.0),
        Check("same cost without drive (k=0): final frequency", f["no_drive_control_final"], "< 1e-3 (purged)",
              f["no_drive_control_final"] < 1e-3),
        Check("Wentworth verdict (every seed)", labels[0], "inner failure (imperfect optimization)",
              all(lab == "inner failure (imperfect optimization)" for lab in labels)),
    ]


PARAMS = (
    Param("k", "float", 0.2, "meiotic drive: Dd parents pass D on with probability (1+k)/2", low=0.0, high=1.0),
    Param("s", "float", 0.5, "viability cost of DD", low=0.0, high=1.0),
    Param("h", "float", 0.0, "dominance of the cost (Dd viability 1-hs)", low=0.0, high=1.0),
    Param("p0", "float", 0.05, "initial frequency of D", low=0.0, high=1.0),
)
SETTINGS = (
    Param("n", "int", 2000, "population size", low=10, high=1_000_000),
    Param("generations", "int", 300, "generations simulated", low=2, high=1_000_000),
    Param("replicates_per_seed", "int", 8, "replicate populations per seed (vmapped)", low=1, high=1024),
    Param("recursion_generations", "int", 3000, "generations of the infinite-population recursion", low=1, high=10_000_000),
)


register_study(
    "greedy-genes-v0",
    description=DESCRIPTION,
    expected_finding=EXPECTED,
    optimizer="evolution",
    settings=SETTINGS,
    full={"n": 20000, "generations": 1000, "replicates_per_seed": 32, "recursion_generations": 10000},
    execute=_execute,
    check=_check,
    params=PARAMS,
    summary="a meiotic-drive allele hacks a genetic algorithm: inner failure by imperfect search (seed 001)",
)
