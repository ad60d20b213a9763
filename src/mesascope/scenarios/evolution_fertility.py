"""`evolution-fertility-v0`: drives evolved for offspring in an ancestral world, deployed in a modern one (seed 001).

The system is an agent with **drives**, a readable mesa-objective over its own actions. Actions:
`mate`, `mate_bc` (mating with birth control), `masturbate`, `care` (child care). Each action has
features `phi [4, 4]` (pleasure, partner, contraception, nurture) and a genome `w [4]` weights them:
the mesa-objective is `g(x) = sum_a x_a (phi w)_a + H(x) / beta` over the agent's time allocation `x`
(a distribution over the available actions; the entropy term is a taste for variety). The agent
optimises it exactly: `x = softmax(beta phi w)` over available actions, so `J_g = 1` by construction.

The base objective (evolution's) is expected offspring, `f(x) = B x_mate x_care / (x_care + c)`:
births need unprotected mating, survival needs care. Its exact optimum over the whole simplex has
`x_mate_bc = x_masturbate = 0` and `x_mate = m* = (1 + c) - sqrt(c (1 + c))` (from
`d/dm [m (1 - m) / (1 + c - m)] = 0`, i.e. `m^2 - 2 (1 + c) m + (1 + c) = 0`), `x_care = 1 - m*`.
`D_train` is the ancestral environment (no `mate_bc`), `D_deploy` the modern one (all four).
Scores are normalised as SPEC.md section 2: `J = (f(x) - f(uniform)) / (f* - f(uniform))`, uniform over
the environment's available actions.

Each behaviour is audited in the environment that differs from training by that behaviour alone:
birth control in the modern environment; masturbation in the ancestral set of options (it was
available all along). A genetic algorithm (`mesascope.optimizers.evolution`) evolves `w`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


from mesascope.optimizers.evolution import EvolutionConfig, make_evolve
from mesascope.measures.measurements import Measurements, Witness
from mesascope.params import Param
from mesascope.scenarios.base import Check, stored_checks
from mesascope.scenarios.study import StudyContext, StudyOutcome, StudySystem, register_study

__all__ = ["ACTIONS", "FEATURES", "PHI", "allocation_epic", "behaviour", "offspring", "optimal_allocation"]

ACTIONS = ("mate", "mate_bc", "masturbate", "care")
FEATURES = ("pleasure", "partner", "contraception", "nurture")
PHI = np.array(
    [[1, 1, 0, 0],  # mate
     [1, 1, 1, 0],  # mate_bc
     [1, 0, 0, 0],  # masturbate
     [0, 0, 0, 1]],  # care
    np.float64,
)
ANCESTRAL = np.array([True, False, True, True])
MODERN = np.array([True, True, True, True])
MATE, MATE_BC, MAST, CARE = range(4)

DESCRIPTION = (
    "Agents with drives (a readable mesa-objective over their own actions: mate, masturbate, care for "
    "children, and mate with birth control when it exists) evolved by a genetic algorithm for offspring in "
    "an ancestral environment without birth control, deployed in a modern one with it (seed 001, Wentworth)."
)
EXPECTED = (
    "Wentworth: birth control is an outer alignment failure (a training-optimal drive set that uses it "
    "exists), masturbation an inner failure through imperfect optimization (the exact optimum never "
    "masturbates, the finite-generation population does); Hubinger's infinite-data definition: birth "
    "control is not an outer failure."
)


def offspring(x: Any, care_half: float, births: float, xp: Any = np) -> Any:
    """Expected offspring `f(x) = births * x_mate * x_care / (x_care + care_half)`, `x [..., 4]` -> `[...]`."""
    return births * x[..., MATE] * x[..., CARE] / (x[..., CARE] + care_half)


def optimal_allocation(care_half: float) -> np.ndarray:
    """The exact maximiser of `offspring` over the simplex, `[4]` (closed form in the module docstring)."""
    m = (1 + care_half) - math.sqrt(care_half * (1 + care_half))
    return np.array([m, 0.0, 0.0, 1 - m])


def behaviour(w: Any, available: np.ndarray, beta: float, xp: Any = np) -> Any:
    """The agent's exact optimum of its drives: `softmax(beta phi w)` over available actions, `[..., 4]`."""
    u = beta * (w @ xp.asarray(PHI.T))
    u = xp.where(xp.asarray(available), u, -xp.inf)
    u = u - u.max(-1, keepdims=True)
    e = xp.exp(u)
    return e / e.sum(-1, keepdims=True)


def _j(x: np.ndarray, available: np.ndarray, care_half: float, births: float) -> np.ndarray:
    unif = available / available.sum()
    f_u = offspring(unif, care_half, births)
    f_star = offspring(optimal_allocation(care_half), care_half, births)
    return (offspring(x, care_half, births) - f_u) / (f_star - f_u)


def allocation_epic(w: np.ndarray, available: np.ndarray, beta: float, care_half: float, births: float,
                    n: int = 20000, seed: int = 0) -> float:
    """EPIC (SPEC.md section 3) between the drives `w [4]` and expected offspring, over allocations.

    Both are rewards on the same space, the allocations `x` over the available actions (so no bridge
    is needed: the mesa-objective's domain is the base objective's). The setting is one-step, so
    canonicalisation only removes the mean; coverage is uniform on the simplex of available actions
    (Dirichlet(1), `n` seeded samples). Returns `sqrt((1 - rho) / 2)`, `rho` the Pearson correlation of
    `g(x) = beta x . (phi w) + H(x)` and `f(x)`.
    """
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 4))
    x[:, available] = rng.dirichlet(np.ones(int(available.sum())), size=n)
    u = np.where(available, beta * (PHI @ w), 0.0)
    ent = -np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0), -1)
    rho = float(np.corrcoef(x @ u + ent, offspring(x, care_half, births))[0, 1])
    return math.sqrt(max(0.0, (1 - rho) / 2))


def _j_drives(w: np.ndarray, x: np.ndarray, available: np.ndarray, beta: float) -> np.ndarray:
    """`J_g` of allocations `x [P, 4]` under each agent's own entropy-regularised drives `w [P, 4]`."""
    u = beta * (w @ PHI.T)
    u = np.where(available, u, -np.inf)
    n = available.sum()

    def g(p: np.ndarray) -> np.ndarray:
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), -1)
        return np.sum(np.where(available, p * np.where(available, u, 0.0), 0.0), -1) + ent

    best = np.log(np.sum(np.where(available, np.exp(u - u.max(-1, keepdims=True)), 0.0), -1)) + u.max(-1)
    g_unif = np.sum(np.where(available, u, 0.0), -1) / n + np.log(n)
    return (g(x) - g_unif) / np.maximum(best - g_unif, 1e-12)


def _execute(ctx: StudyContext) -> StudyOutcome:
    cfg, prm = ctx.config, ctx.params
    c, births, beta = float(prm["care_half"]), float(prm["births"]), float(prm["beta"])
    init_mean = tuple(float(v) for v in prm["ancestral_drives"])

    def fitness(pop: jax.Array) -> jax.Array:
        return offspring(behaviour(pop, ANCESTRAL, beta, jnp), c, births, jnp)

    def ga(generations: int) -> Any:
        ecfg = EvolutionConfig(
            pop_size=int(cfg["pop_size"]), dim=4, generations=generations, mutation_sd=float(cfg["mutation_sd"]),
            selection="truncation", truncation=0.5, recombination=True, init_mean=init_mean, init_sd=float(cfg["init_sd"]),
        )
        return jax.jit(jax.vmap(make_evolve(ecfg, fitness)))

    keys = jax.vmap(jax.random.key)(jnp.asarray(ctx.seeds))
    ctx.progress("evolve", 0.0)
    pops, hist = ga(int(cfg["generations"]))(keys)
    ctx.progress("evolve", 0.5)
    pops_long, hist_long = ga(int(cfg["long_generations"]))(keys)
    ctx.progress("evolve", 1.0)
    pops, pops_long = np.asarray(pops, np.float64), np.asarray(pops_long, np.float64)

    x_opt = optimal_allocation(c)
    f_opt = offspring(x_opt, c, births)
    env_mast = ANCESTRAL  # masturbation's own deployment: options it always had

    def witnesses(deploy_env: np.ndarray, pop: np.ndarray) -> list[Witness]:
        """Training-optimal drive sets (gap 0 in the limit of large drives) and the GA's best individual."""
        out = []
        for sigma, name in ((0.0, "optimum, no contraception drive"), (0.95, "optimum, contraception drive +3")):
            # x* in training; in deployment the contraception drive splits mating by sigmoid(w_contra)
            x_dep = x_opt.copy()
            if deploy_env[MATE_BC]:
                x_dep[MATE], x_dep[MATE_BC] = (1 - sigma) * x_opt[MATE], sigma * x_opt[MATE]
            out.append(Witness(name, f"the exact training optimum (x_mate={x_opt[MATE]:.3f}, x_care={x_opt[CARE]:.3f}) "
                               f"with birth-control share {sigma} of mating when available", 0.0,
                               float(_j(x_dep, deploy_env, c, births))))
        j_tr = _j(behaviour(pop, ANCESTRAL, beta), ANCESTRAL, c, births)
        best = int(np.argmax(j_tr))
        x_dep = behaviour(pop[best], deploy_env, beta)
        out.append(Witness("GA's fittest individual", "the population's best drive set", float(1 - j_tr[best]),
                           float(_j(x_dep, deploy_env, c, births)), trained=True))
        return out

    def measure(pop: np.ndarray, deploy_env: np.ndarray, name: str) -> Measurements:
        x_tr, x_dep = behaviour(pop, ANCESTRAL, beta), behaviour(pop, deploy_env, beta)
        j_tr = float(_j(x_tr, ANCESTRAL, c, births).mean())
        j_dep = float(_j(x_dep, deploy_env, c, births).mean())
        return Measurements(
            system=name,
            has_mesa_objective=True,
            j_base_train=j_tr, j_intended_train=j_tr,  # evolution's objective and ours: offspring
            j_base_deploy=j_dep, j_intended_deploy=j_dep,
            j_behavioral_train=float(_j_drives(pop, x_tr, ANCESTRAL, beta).mean()),
            j_behavioral_deploy=float(_j_drives(pop, x_dep, deploy_env, beta).mean()),
            behavioral_objective="drives (the mesa-objective; behaviour is exactly its softmax optimum)",
            behavioral_fit=1.0,
            # offspring-optimal allocations never use birth control or masturbation, in either environment
            worst_j_intended_base_optimal_deploy=float(_j(x_opt, deploy_env, c, births)),
            worst_j_intended_base_optimal_train=float(_j(x_opt, ANCESTRAL, c, births)),
            training_optimality_gap=1.0 - j_tr,
            j_mesa_train=float(_j_drives(pop, x_tr, ANCESTRAL, beta).mean()),
            j_mesa_deploy=float(_j_drives(pop, x_dep, deploy_env, beta).mean()),
            # the mesa-objective read off as the population-mean drives, compared on each coverage
            epic_mesa_base_train=allocation_epic(pop.mean(0), ANCESTRAL, beta, c, births),
            epic_mesa_base_deploy=allocation_epic(pop.mean(0), deploy_env, beta, c, births),
            epic_mesa_intended_deploy=allocation_epic(pop.mean(0), deploy_env, beta, c, births),
            mesa_uses_deploy_feature=False, mesa_points_to_base=False,
            witnesses=(Witness("system", "the evolved population (mean over individuals)", 1.0 - j_tr, j_dep, j_dep, trained=True),
                       *witnesses(deploy_env, pop)),
            notes={"deploy_environment": [a for a, ok in zip(ACTIONS, deploy_env) if ok],
                   "mesa_objective": dict(zip(FEATURES, pop.mean(0).tolist()))},
        )

    systems, variants, per_seed = [], [], []
    for i, seed in enumerate(ctx.seeds):
        pop = pops[i]
        systems.append(StudySystem(seed, measure(pop, MODERN, f"seed-{seed}")))
        # Each behaviour audited where it alone differs from training (the harness judges them).
        variants.append(StudySystem(seed, measure(pop, MODERN, f"seed-{seed}:birth-control"), name="birth control"))
        variants.append(StudySystem(seed, measure(pop, env_mast, f"seed-{seed}:masturbation"), name="masturbation"))
        x_dep = behaviour(pop, MODERN, beta)
        x_tr = behaviour(pop, ANCESTRAL, beta)
        x_chaste = x_tr.copy()  # the same allocation with masturbation time removed (renormalised)
        x_chaste[:, MAST] = 0.0
        x_chaste /= x_chaste.sum(-1, keepdims=True)
        per_seed.append({
            "seed": seed,
            "masturbation_rate_train": float(behaviour(pop, ANCESTRAL, beta)[:, MAST].mean()),
            "masturbation_rate_long_run": float(behaviour(pops_long[i], ANCESTRAL, beta)[:, MAST].mean()),
            "birth_control_share_of_mating_deploy": float((x_dep[:, MATE_BC] / (x_dep[:, MATE] + x_dep[:, MATE_BC])).mean()),
            "j_base_train": float(_j(x_tr, ANCESTRAL, c, births).mean()),
            "j_base_train_without_masturbation": float(_j(x_chaste, ANCESTRAL, c, births).mean()),
            "j_intended_deploy": float(_j(x_dep, MODERN, c, births).mean()),
        })

    mast_ga = float(np.mean([s["masturbation_rate_train"] for s in per_seed]))
    mast_long = float(np.mean([s["masturbation_rate_long_run"] for s in per_seed]))
    bc_share = float(np.mean([s["birth_control_share_of_mating_deploy"] for s in per_seed]))
    hist_np = {k: np.asarray(v) for k, v in hist_long.items()}
    mast_curve = np.array([[behaviour(hist_np["mean_params"][s, g], ANCESTRAL, beta)[MAST]
                            for g in range(hist_np["mean_params"].shape[1])] for s in range(len(ctx.seeds))])

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        g = np.arange(mast_curve.shape[1])
        for s in range(len(mast_curve)):
            ax.plot(g, mast_curve[s], color="tab:purple", alpha=0.6, label="masturbation rate (population-mean drives)" if s == 0 else None)
        ax.axvline(int(cfg["generations"]), color="k", ls=":", label="fast-preset generations (audited)")
        ax.axhline(0.0, color="tab:green", ls="--", label="exact optimum: 0")
        ax.set_xlabel("generation")
        ax.set_ylabel("share of time spent masturbating (ancestral)")
        ax.set_title("masturbation fades only as optimization gets closer to perfect")
        ax.legend()

    checks = [
        Check("exact optimum: masturbation rate", float(x_opt[MAST]), "0", x_opt[MAST] == 0.0),
        Check("exact optimum: birth-control rate (modern)", float(x_opt[MATE_BC]), "0", x_opt[MATE_BC] == 0.0),
        Check("GA population masturbation rate (finite generations)", mast_ga, "> 0.01", mast_ga > 0.01),
        Check("longer evolution masturbates less", mast_long, f"< {mast_ga:.3g}", mast_long < mast_ga),
        Check("birth-control share of mating in deployment", bc_share, "> 0.05 (drive drifted neutrally)", bc_share > 0.05),
    ]
    findings = {
        "exact_optimum": {"allocation": dict(zip(ACTIONS, x_opt.tolist())), "offspring": float(f_opt),
                          "formula": "x_mate = (1+c) - sqrt(c(1+c)), x_care = 1 - x_mate, others 0"},
        "per_seed": per_seed,
        "masturbation_rate": {"ga": mast_ga, "ga_long_run": mast_long, "exact_optimum": 0.0,
                              "generations": int(cfg["generations"]), "long_run_generations": int(cfg["long_generations"])},
        "mean_drives": dict(zip(FEATURES, pops.mean((0, 1)).tolist())),
        "checks": [c.to_dict() for c in checks],
    }
    return StudyOutcome(systems=tuple(systems), findings=findings, variants=tuple(variants),
                        figures={"masturbation-vs-generations": draw})


def _check(audit: Mapping[str, Any]) -> list[Check]:
    """The study's own checks, and the seed's table: each school's label for each behaviour, every seed."""
    labels: dict[str, dict[str, list[str]]] = {}
    for v in audit.get("variants", []):
        for school, verdict in v["verdicts"].items():
            labels.setdefault(v["name"], {}).setdefault(school, []).append(verdict["label"])

    def unanimous(behaviour: str, school: str, pred: Callable[[str], bool]) -> tuple[str, bool]:
        got = labels.get(behaviour, {}).get(school, [])
        return (got[0] if got else "n/a"), bool(got) and all(pred(x) for x in got)

    out = stored_checks(audit)
    for name, behaviour, school, expected, pred in (
        ("Wentworth: birth control", "birth control", "wentworth", "outer alignment failure",
         lambda x: x == "outer alignment failure"),
        ("Wentworth: masturbation", "masturbation", "wentworth", "inner failure (imperfect optimization)",
         lambda x: x == "inner failure (imperfect optimization)"),
        ("Hubinger (infinite data): birth control", "birth control", "hubinger", "not an outer failure",
         lambda x: "outer" not in x),
    ):
        got, holds = unanimous(behaviour, school, pred)
        out.append(Check(name, got, expected, holds))
    return out


PARAMS = (
    Param("care_half", "float", 0.25, "care needed per child, as a share of time", low=0.01, high=10.0),
    Param("births", "float", 8.0, "offspring scale", low=0.1, high=1000.0),
    Param("beta", "float", 1.0, "rationality of the drives' softmax allocation", low=0.01, high=100.0),
    Param("ancestral_drives", "floats", (1.5, 0.0, 0.0, 0.0), "initial mean drives (mate, mate_bc, masturbate, care)",
          low=-100.0, high=100.0, length=(4, 4)),
)
SETTINGS = (
    Param("pop_size", "int", 256, "individuals", low=4, high=1_000_000),
    Param("generations", "int", 40, "generations of the audited population", low=1, high=1_000_000),
    Param("long_generations", "int", 400, "generations of the long-run comparison", low=1, high=10_000_000),
    Param("mutation_sd", "float", 0.05, "mutation standard deviation", low=0.0, high=10.0),
    Param("init_sd", "float", 0.5, "initial spread of the drives", low=0.0, high=10.0),
)


register_study(
    "evolution-fertility-v0",
    description=DESCRIPTION,
    expected_finding=EXPECTED,
    optimizer="evolution",
    settings=SETTINGS,
    full={"pop_size": 1024, "generations": 60, "long_generations": 2000},
    execute=_execute,
    check=_check,
    params=PARAMS,
    summary="drives evolved for offspring, deployed with birth control: each school's labels (seed 001)",
)
