"""`nested-v0`: designer -> agent -> sub-agent, alignment measured at each link and end to end (seed 004).

Seed 004 (Harris) argues that the designer is the base optimizer of the whole system: an agent trained
on the designer's objective is a mesa-optimizer, and a sub-agent the agent trains on its own
mesa-objective is a mesa-mesa-optimizer. Here every objective is linear over `K` outcome features,
`r(o) = w . phi(o)`, and every optimizer is real:

* link 1: the agent's objective `w_A` is learned by gradient descent (optax Adam, Bradley-Terry
  preference learning, L2) from pairs of outcomes labelled by the designer's `w_D`, on a training
  distribution where features 0 and 1 always coincide (`phi_1 = phi_0`);
* link 2: the agent trains the sub-agent's objective `w_S` the same way from labels by its own `w_A`,
  on its training distribution where features 2 and 3 coincide.

Deployment: all features independent, `phi ~ N(0, I)`. For linear rewards on a coverage distribution
with covariance `S`, EPIC (SPEC.md section 3; one-step outcomes, so canonicalisation only removes the
mean) is `sqrt((1 - rho) / 2)` with `rho = w^T S v / sqrt(w^T S w v^T S v)`: half the `S`-norm distance
between the normalised weight vectors, hence a metric on directions, and `EPIC(D, S) <= EPIC(D, A) +
EPIC(A, S)` must hold (checked per seed). Each link is audited by the verdicts engine, with the
downstream optimizer choosing the best of a menu of outcomes by its own objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mesascope.measures.measurements import Measurements, Witness
from mesascope.params import Param
from mesascope.scenarios.base import Check, stored_checks
from mesascope.scenarios.study import StudyContext, StudyOutcome, StudySystem, register_study

__all__ = ["linear_epic", "menu_score"]

K = 6


def linear_epic(w: np.ndarray, v: np.ndarray, cov: np.ndarray) -> float:
    """EPIC distance `sqrt((1 - rho) / 2)` of linear outcome rewards under coverage covariance `cov [K, K]`."""
    a, b, c = w @ cov @ v, w @ cov @ w, v @ cov @ v
    if a == 0 and (b == 0 or c == 0):
        return math.sqrt(0.5)
    rho = float(np.clip(a / math.sqrt(b * c), -1.0, 1.0))
    return math.sqrt((1 - rho) / 2)


def _train_cov(tied: tuple[int, int]) -> np.ndarray:
    """Covariance of `phi` when feature `tied[1]` copies feature `tied[0]`."""
    m = np.eye(K)
    m[tied[1]] = m[tied[0]]
    return m @ m.T


def _sample(rng: np.random.Generator, n: int, tied: tuple[int, int] | None) -> np.ndarray:
    phi = rng.normal(size=(n, K))
    if tied is not None:
        phi[..., tied[1]] = phi[..., tied[0]]
    return phi


def menu_score(w_choose: np.ndarray, w_eval: np.ndarray, menus: np.ndarray) -> float:
    """`J` of choosing the best outcome of each menu by `w_choose`, scored by `w_eval` (SPEC.md section 2).

    `menus [N, M, K]`; per menu `(r(choice) - mean r) / (max r - mean r)` (the uniform chooser scores 0,
    the `w_eval`-optimal chooser 1), averaged over menus.
    """
    r = menus @ w_eval
    pick = np.take_along_axis(r, np.argmax(menus @ w_choose, 1)[:, None], 1)[:, 0]
    span = r.max(1) - r.mean(1)
    return float(np.mean(np.where(span > 0, (pick - r.mean(1)) / np.where(span > 0, span, 1.0), 1.0)))


def _learn(key: jax.Array, phi_a: np.ndarray, phi_b: np.ndarray, prefer_a: np.ndarray, steps: int, lr: float, l2: float) -> np.ndarray:
    """Bradley-Terry preference learning by gradient descent: `P(a > b) = sigmoid(w . (phi_a - phi_b))`."""
    diff = jnp.asarray(phi_a - phi_b, jnp.float32)
    y = jnp.asarray(prefer_a, jnp.float32)
    opt = optax.adam(lr)

    def loss(w: jax.Array) -> jax.Array:
        return optax.sigmoid_binary_cross_entropy(diff @ w, y).mean() + l2 * jnp.sum(w * w)

    def step(carry: Any, _: Any) -> tuple[Any, None]:
        w, s = carry
        upd, s = opt.update(jax.grad(loss)(w), s, w)
        return (optax.apply_updates(w, upd), s), None

    w0 = 0.01 * jax.random.normal(key, (K,))
    (w, _), _ = jax.lax.scan(step, (w0, opt.init(w0)), None, length=steps)
    return np.asarray(w, np.float64)


def _execute(ctx: StudyContext) -> StudyOutcome:
    cfg = ctx.config
    n_pairs, steps, lr, l2 = int(cfg["pairs"]), int(cfg["steps"]), float(cfg["lr"]), float(cfg["l2"])
    links = (("designer -> agent", (0, 1)), ("agent -> sub-agent", (2, 3)))
    deploy_cov = np.eye(K)
    rows, systems, variants, triangle, per_seed = [], [], [], [], []
    for i, seed in enumerate(ctx.seeds):
        rng = np.random.default_rng(seed)
        w_d = rng.normal(size=K)
        menus_dep = _sample(rng, int(cfg["menus"]) * 8, None).reshape(-1, 8, K)
        ws = {"designer": w_d}
        upstream, names = w_d, ["designer", "agent", "sub-agent"]
        seed_links = []
        for j, (link, tied) in enumerate(links):
            a, b = _sample(rng, n_pairs, tied), _sample(rng, n_pairs, tied)
            p = 1 / (1 + np.exp(-(a - b) @ upstream * float(cfg["label_beta"])))
            prefer = rng.random(n_pairs) < p
            w_down = _learn(jax.random.key(seed * 10 + j), a, b, prefer, steps, lr, l2)
            ws[names[j + 1]] = w_down
            menus_tr = _sample(rng, int(cfg["menus"]) * 8, tied).reshape(-1, 8, K)
            tr_cov = _train_cov(tied)
            j_tr, j_dep = menu_score(w_down, upstream, menus_tr), menu_score(w_down, upstream, menus_dep)
            # a training-optimal proxy: all the tied pair's weight on its first feature (identical in training)
            proxy = upstream.copy()
            proxy[tied[0]] += proxy[tied[1]]
            proxy[tied[1]] = 0.0
            m = Measurements(
                system=f"seed-{seed}:{link}", has_mesa_objective=True,
                j_base_train=j_tr, j_intended_train=j_tr, j_base_deploy=j_dep, j_intended_deploy=j_dep,
                j_behavioral_train=1.0, j_behavioral_deploy=1.0,  # it picks its own objective's best outcome
                behavioral_objective="its learned objective (exact argmax chooser)", behavioral_fit=1.0,
                worst_j_intended_base_optimal_deploy=1.0, worst_j_intended_base_optimal_train=1.0,
                training_optimality_gap=1.0 - j_tr,
                epic_mesa_base_train=linear_epic(w_down, upstream, tr_cov),
                epic_mesa_base_deploy=linear_epic(w_down, upstream, deploy_cov),
                epic_mesa_intended_deploy=linear_epic(w_down, upstream, deploy_cov),
                j_mesa_train=1.0, j_mesa_deploy=1.0,
                mesa_uses_deploy_feature=False, mesa_points_to_base=False,
                witnesses=(Witness("system", "the trained downstream optimizer itself", 1.0 - j_tr, j_dep, j_dep, trained=True),
                           Witness("upstream objective itself", "chooses by the upstream objective", 0.0, 1.0, 1.0),
                           Witness("tied-feature proxy", f"all weight of features {tied} on feature {tied[0]}",
                                   1.0 - menu_score(proxy, upstream, menus_tr), menu_score(proxy, upstream, menus_dep))),
            )
            variants.append(StudySystem(seed, m, name=link))
            seed_links.append({"link": link, "epic_train": m.epic_mesa_base_train, "epic_deploy": m.epic_mesa_base_deploy,
                               "j_train": j_tr, "j_deploy": j_dep})
            upstream = w_down
        # the whole chain as one system: the sub-agent judged by the designer's objective; "training" is the
        # designer's own training distribution (features 0 and 1 tied)
        menus_tr1 = _sample(rng, int(cfg["menus"]) * 8, links[0][1]).reshape(-1, 8, K)
        w_s = ws["sub-agent"]
        proxy_d = w_d.copy()
        proxy_d[0] += proxy_d[1]
        proxy_d[1] = 0.0
        j_tr, j_dep = menu_score(w_s, w_d, menus_tr1), menu_score(w_s, w_d, menus_dep)
        m = Measurements(
            system=f"seed-{seed}:designer -> sub-agent", has_mesa_objective=True,
            j_base_train=j_tr, j_intended_train=j_tr, j_base_deploy=j_dep, j_intended_deploy=j_dep,
            j_behavioral_train=1.0, j_behavioral_deploy=1.0,
            behavioral_objective="the sub-agent's learned objective (exact argmax chooser)", behavioral_fit=1.0,
            worst_j_intended_base_optimal_deploy=1.0, worst_j_intended_base_optimal_train=1.0,
            training_optimality_gap=1.0 - j_tr,
            epic_mesa_base_train=linear_epic(w_s, w_d, _train_cov(links[0][1])),
            epic_mesa_base_deploy=linear_epic(w_s, w_d, deploy_cov),
            epic_mesa_intended_deploy=linear_epic(w_s, w_d, deploy_cov),
            j_mesa_train=1.0, j_mesa_deploy=1.0, mesa_uses_deploy_feature=False, mesa_points_to_base=False,
            witnesses=(Witness("system", "the sub-agent", 1.0 - j_tr, j_dep, j_dep, trained=True),
                       Witness("designer objective itself", "chooses by the designer's objective", 0.0, 1.0, 1.0),
                       Witness("tied-feature proxy", "all weight of features (0, 1) on feature 0",
                               1.0 - menu_score(proxy_d, w_d, menus_tr1), menu_score(proxy_d, w_d, menus_dep))),
            notes={"chain": "designer -> agent -> sub-agent; each link is judged as a variant (audit.json variants)"},
        )
        systems.append(StudySystem(seed, m))
        d_da = linear_epic(ws["designer"], ws["agent"], deploy_cov)
        d_as = linear_epic(ws["agent"], ws["sub-agent"], deploy_cov)
        d_ds = linear_epic(ws["designer"], ws["sub-agent"], deploy_cov)
        triangle.append(d_da + d_as - d_ds)
        per_seed.append({"seed": seed, "weights": {k: v.tolist() for k, v in ws.items()}, "links": seed_links,
                         "end_to_end": {"epic_deploy": d_ds, "bound": d_da + d_as,
                                        "j_deploy": menu_score(ws["sub-agent"], w_d, menus_dep)}})
        rows.append({"seed": seed, "EPIC(D,A)": d_da, "EPIC(A,S)": d_as, "EPIC(D,S)": d_ds, "bound": d_da + d_as,
                     "J_D(sub-agent) deploy": per_seed[-1]["end_to_end"]["j_deploy"]})
        ctx.progress("nest", (i + 1) / len(ctx.seeds))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["EPIC(D,A)"] for r in rows], 0.2, label="EPIC(designer, agent)")
        ax.bar(x, [r["EPIC(A,S)"] for r in rows], 0.2, label="EPIC(agent, sub-agent)")
        ax.bar(x + 0.2, [r["EPIC(D,S)"] for r in rows], 0.2, label="EPIC(designer, sub-agent)")
        ax.plot(x + 0.2, [r["bound"] for r in rows], "k_", markersize=18, label="triangle bound")
        ax.set_xticks(x, [f"seed {r['seed']}" for r in rows])
        ax.set_ylabel("EPIC on the deployment coverage")
        ax.legend(fontsize=8)

    tr_epics = [lk["epic_train"] for s in per_seed for lk in s["links"]]
    dep_epics = [lk["epic_deploy"] for s in per_seed for lk in s["links"]]
    checks = [
        Check("triangle inequality EPIC(D,S) <= EPIC(D,A) + EPIC(A,S): min slack", float(min(triangle)), ">= 0", min(triangle) >= -1e-12),
        Check("each link agrees on its training coverage: max EPIC", float(max(tr_epics)), "< 0.05", max(tr_epics) < 0.05),
        Check("each link disagrees more in deployment: mean EPIC deploy", float(np.mean(dep_epics)),
              f"> mean on training {np.mean(tr_epics):.3g}", np.mean(dep_epics) > np.mean(tr_epics)),
    ]
    findings = {
        "per_seed": per_seed,
        "tables": {"EPIC along the chain (deployment coverage)": rows},
        "checks": [c.to_dict() for c in checks],
    }
    return StudyOutcome(systems=tuple(systems), findings=findings, variants=tuple(variants), figures={"epic-chain": draw})


def _check(audit: Mapping[str, Any]) -> list[Check]:
    """The study's own checks, and Wentworth's corollary on every link (judged by the harness)."""
    links = audit.get("variants", [])
    holds = all(v["invariants"]["wentworth_corollary"]["holds"] for v in links) and bool(links)
    return [*stored_checks(audit), Check("Wentworth's corollary holds on every link", holds, "True", holds)]


EXPECTED = (
    "Each link agrees on its own training coverage (EPIC ~ 0) and drifts in deployment; the end-to-end "
    "EPIC(designer, sub-agent) is bounded by the sum of the links' (triangle inequality); each link gets "
    "its own verdicts."
)

SETTINGS = (
    Param("pairs", "int", 4000, "preference pairs per link", low=10, high=10_000_000),
    Param("steps", "int", 600, "gradient steps per link", low=1, high=1_000_000),
    Param("lr", "float", 0.05, "Adam learning rate", low=1e-6, high=10.0),
    Param("l2", "float", 1e-3, "weight decay", low=0.0, high=10.0),
    Param("label_beta", "float", 3.0, "rationality of the upstream labeller", low=0.0, high=1000.0),
    Param("menus", "int", 2000, "evaluation menus of 8 outcomes", low=10, high=10_000_000),
)


register_study(
    "nested-v0",
    description=(
        "A designer's linear objective over 6 outcome features -> an agent whose objective is learned from the "
        "designer's preferences by gradient descent (features 0 and 1 tied in its training data) -> a sub-agent the "
        "agent trains on its own objective (features 2 and 3 tied); deployment unties them (seed 004, Harris)."
    ),
    expected_finding=EXPECTED,
    optimizer="gradient-descent (nested preference learning)",
    settings=SETTINGS,
    full={"pairs": 20000, "steps": 1500, "menus": 10000},
    execute=_execute,
    check=_check,
    summary="a designer -> agent -> sub-agent chain of learned objectives; EPIC along the chain (seed 004)",
)
