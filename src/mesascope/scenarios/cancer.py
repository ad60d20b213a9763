"""`cancer-shift-v0`: label noise plus a base-rate shift; more data does not remove deployment regret (seed 001).

In seed 001's comments, infinite training data does not remove generalization error when the
deployment distribution differs. Here: 8x8 synthetic scans, `x = y * A * blob + noise`
(`noise ~ N(0, sigma^2 I)`, a seeded Gaussian blob as the tumour), label `y = 1` (cancer) with base rate
`pi_train` in training and `pi_deploy` in deployment; training labels are flipped with probability
`rho`. A logistic-regression classifier on the pixels is trained by gradient descent (optax Adam) on
`n` noisy examples, for growing `n`.

Everything is evaluated in closed form. For a linear rule `w . x + b > 0` and class means `mu_0 = 0`,
`mu_1 = A * blob`: `P(err | y=1) = Phi(-(w . mu_1 + b) / (sigma |w|))`, `P(err | y=0) = Phi(b / (sigma |w|))`.
The Bayes-optimal rule for base rate `pi` is `w = mu_1 / sigma^2`, `b = -|mu_1|^2 / (2 sigma^2) + log(pi / (1 - pi))`.
Symmetric label noise maps the posterior to `rho + (1 - 2 rho) P(y=1|x)`, which crosses 1/2 exactly where
the clean posterior does, so with infinite data the trained rule converges to the training Bayes rule
(threshold for `pi_train`), and its deployment regret converges to
`R_deploy(Bayes_train) - R_deploy(Bayes_deploy) > 0` whenever `pi_train != pi_deploy`.
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
from mesascope.scenarios.base import Check
from mesascope.scenarios.study import StudyContext, StudyOutcome, StudySystem, register_study

__all__ = ["bayes_rule", "linear_risk", "make_blob"]

SIDE = 8


def _phi(z: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * (1 + np.vectorize(erf)(np.asarray(z, np.float64) / math.sqrt(2)))


def make_blob(amplitude: float) -> np.ndarray:
    """The tumour template `[64]`: a Gaussian blob (width 1.2 px) centred on the scan, scaled to `amplitude` norm."""
    r = np.arange(SIDE) - (SIDE - 1) / 2
    blob = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.2**2)).ravel()
    return amplitude * blob / np.linalg.norm(blob)


def linear_risk(w: np.ndarray, b: float, mu1: np.ndarray, sigma: float, pi: float) -> float:
    """Exact 0-1 risk of `w . x + b > 0` on clean labels when `P(y=1) = pi` (module docstring)."""
    s = sigma * float(np.linalg.norm(w))
    if s == 0:
        return pi if b <= 0 else 1 - pi
    miss = float(_phi(-(w @ mu1 + b) / s))
    false_alarm = float(_phi(b / s))
    return pi * miss + (1 - pi) * false_alarm


def bayes_rule(mu1: np.ndarray, sigma: float, pi: float) -> tuple[np.ndarray, float]:
    """The Bayes-optimal linear rule `(w, b)` for base rate `pi`."""
    return mu1 / sigma**2, -float(mu1 @ mu1) / (2 * sigma**2) + math.log(pi / (1 - pi))


def _execute(ctx: StudyContext) -> StudyOutcome:
    cfg, prm = ctx.config, ctx.params
    sigma, rho = float(prm["sigma"]), float(prm["label_noise"])
    pi_tr, pi_dep = float(prm["pi_train"]), float(prm["pi_deploy"])
    mu1 = make_blob(float(prm["separation"]) * sigma)
    sizes = [int(n) for n in cfg["sizes"]]
    opt = optax.adam(float(cfg["lr"]))
    l2 = float(cfg["l2"])

    def train_one(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        k_y, k_x, k_f = jax.random.split(key, 3)
        y = jax.random.bernoulli(k_y, pi_tr, (n,))
        x = y[:, None] * jnp.asarray(mu1, jnp.float32) + sigma * jax.random.normal(k_x, (n, SIDE * SIDE))
        y_obs = jnp.where(jax.random.bernoulli(k_f, rho, (n,)), ~y, y).astype(jnp.float32)

        def loss(p: tuple[jax.Array, jax.Array]) -> jax.Array:
            logits = x @ p[0] + p[1]
            return optax.sigmoid_binary_cross_entropy(logits, y_obs).mean() + l2 * jnp.sum(p[0] ** 2)

        def step(carry: Any, _: Any) -> tuple[Any, None]:
            p, s = carry
            g = jax.grad(loss)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        p0 = (jnp.zeros(SIDE * SIDE), jnp.zeros(()))
        (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=int(cfg["steps"]))
        return p

    bayes_tr, bayes_dep = bayes_rule(mu1, sigma, pi_tr), bayes_rule(mu1, sigma, pi_dep)
    r_star_tr = linear_risk(*bayes_tr, mu1, sigma, pi_tr)
    r_star_dep = linear_risk(*bayes_dep, mu1, sigma, pi_dep)
    limit = linear_risk(*bayes_tr, mu1, sigma, pi_dep) - r_star_dep
    regret_dep = np.zeros((len(sizes), len(ctx.seeds)))
    regret_tr = np.zeros_like(regret_dep)
    last_params = []
    for i, n in enumerate(sizes):
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), n))(jnp.asarray(ctx.seeds))
        ws, bs = jax.jit(jax.vmap(lambda k: train_one(k, n)))(keys)
        ws, bs = np.asarray(ws, np.float64), np.asarray(bs, np.float64)
        for j in range(len(ctx.seeds)):
            regret_dep[i, j] = linear_risk(ws[j], bs[j], mu1, sigma, pi_dep) - r_star_dep
            regret_tr[i, j] = linear_risk(ws[j], bs[j], mu1, sigma, pi_tr) - r_star_tr
        if i == len(sizes) - 1:
            last_params = list(zip(ws, bs))
        ctx.progress("train", (i + 1) / len(sizes))
    se = lambda a: a.std(1, ddof=1) / np.sqrt(a.shape[1]) if a.shape[1] > 1 else np.zeros(a.shape[0])  # noqa: E731

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.errorbar(sizes, regret_dep.mean(1), yerr=se(regret_dep), fmt="o-", color="tab:red", label="deploy regret (pi = %g)" % pi_dep)
        ax.errorbar(sizes, regret_tr.mean(1), yerr=se(regret_tr), fmt="s-", color="tab:blue", label="train regret (pi = %g)" % pi_tr)
        ax.axhline(limit, color="tab:red", ls="--", label=f"infinite-data limit {limit:.4f} (closed form)")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("training examples n (labels flipped with prob. %g)" % rho)
        ax.set_ylabel("excess 0-1 risk over the Bayes-optimal classifier")
        ax.legend(fontsize=8)

    # per-system blocks: J = (acc - 1/2) / (acc_Bayes - 1/2) on clean labels (chance = guessing at random);
    # symmetric label noise maps accuracy affinely, so J on the noisy base objective equals J on clean labels
    def j(risk: float, r_star: float) -> float:
        return ((1 - risk) - 0.5) / ((1 - r_star) - 0.5)

    w_tr_dep = j(linear_risk(*bayes_tr, mu1, sigma, pi_dep), r_star_dep)
    systems = []
    for seed, (w, b) in zip(ctx.seeds, last_params):
        jt, jd = j(linear_risk(w, b, mu1, sigma, pi_tr), r_star_tr), j(linear_risk(w, b, mu1, sigma, pi_dep), r_star_dep)
        m = Measurements(
            system=f"seed-{seed}", has_mesa_objective=False,
            j_base_train=jt, j_intended_train=jt, j_base_deploy=jd, j_intended_deploy=jd,
            worst_j_intended_base_optimal_deploy=1.0,  # noisy-label Bayes rule on deploy = clean Bayes rule
            worst_j_intended_base_optimal_train=1.0,
            training_optimality_gap=1.0 - jt,
            witnesses=(Witness("Bayes rule for the training base rate", "the infinite-data limit of training", 0.0, w_tr_dep, w_tr_dep),
                       Witness("trained classifier", f"logistic regression on n={sizes[-1]}", 1.0 - jt, jd, jd, trained=True)),
            notes={"J": "normalised accuracy (acc - 1/2) / (acc_Bayes - 1/2) on clean labels"},
        )
        systems.append(StudySystem(seed, m))
    table = [{"n": n, "deploy regret": float(regret_dep[i].mean()), "train regret": float(regret_tr[i].mean())} for i, n in enumerate(sizes)]
    findings = {
        "bayes_risk": {"train": r_star_tr, "deploy": r_star_dep},
        "infinite_data_deploy_regret": limit,
        "sizes": sizes,
        "deploy_regret": regret_dep.tolist(),
        "deploy_regret_se_at_largest_n": float(se(regret_dep)[-1]),
        "train_regret": regret_tr.tolist(),
        "tables": {"excess risk vs training data (mean over seeds)": table},
    }
    return StudyOutcome(systems=tuple(systems), findings=findings, figures={"regret-vs-data": draw})


def _check(audit: Mapping[str, Any]) -> list[Check]:
    """The expected finding, measured on a finished audit."""
    f = audit["findings"]
    limit = f["infinite_data_deploy_regret"]
    mean_last = float(np.mean(f["deploy_regret"][-1]))
    train_last = float(np.mean(f["train_regret"][-1]))
    se_last = f["deploy_regret_se_at_largest_n"]
    return [
        Check("closed-form infinite-data deploy regret", limit, "> 0", limit > 0),
        Check("deploy regret at the largest n", mean_last, f"within 3 SE + 10% of the limit {limit:.4f}",
              abs(mean_last - limit) < 3 * se_last + 0.1 * limit),
        Check("train regret at the largest n", train_last, "< 0.1 x the deploy limit (training is solved)", train_last < 0.1 * limit),
        Check("deploy regret does not shrink to 0 with data", mean_last / limit, "> 0.5 of the limit", mean_last > 0.5 * limit),
    ]


EXPECTED = (
    "Training regret goes to 0 with data, but deployment regret converges to the closed-form positive "
    "limit R_deploy(Bayes_train) - R_deploy(Bayes_deploy): infinite data does not remove it."
)

PARAMS = (
    Param("sigma", "float", 1.0, "pixel noise standard deviation", low=0.01, high=100.0),
    Param("separation", "float", 2.0, "tumour amplitude in units of sigma", low=0.0, high=100.0),
    Param("label_noise", "float", 0.2, "probability a training label is flipped", low=0.0, high=0.49),
    Param("pi_train", "float", 0.5, "cancer base rate in training", low=0.001, high=0.999),
    Param("pi_deploy", "float", 0.1, "cancer base rate in deployment", low=0.001, high=0.999),
)
SETTINGS = (
    Param("sizes", "ints", (32, 128, 512, 2048, 8192, 32768), "training set sizes", low=2, high=10_000_000, length=(1, 32)),
    Param("steps", "int", 400, "Adam steps per fit", low=1, high=1_000_000),
    Param("lr", "float", 0.05, "Adam learning rate", low=1e-6, high=10.0),
    Param("l2", "float", 1e-4, "weight decay", low=0.0, high=10.0),
)


register_study(
    "cancer-shift-v0",
    description=(
        "8x8 synthetic scans (a Gaussian-blob tumour plus pixel noise), training labels flipped with probability "
        "rho, cancer base rate 0.5 in training and 0.1 in deployment; logistic regression trained by gradient "
        "descent (optax) on growing data; exact risks against the Bayes-optimal classifier of each distribution "
        "(seed 001 comments)."
    ),
    expected_finding=EXPECTED,
    optimizer="gradient-descent (supervised)",
    settings=SETTINGS,
    full={"sizes": [32, 128, 512, 2048, 8192, 32768, 131072], "steps": 1500, "l2": 1e-5},
    execute=_execute,
    check=_check,
    params=PARAMS,
    summary="logistic regression on noisy-label synthetic scans; the cancer base rate shifts in deployment",
)
