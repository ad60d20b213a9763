"""`grader-v0`: an actor that optimises a learned grader, and the Goodhart curve (seed 003, SPEC.md §8).

Plans are vectors `z in R^D` drawn by a base policy `pi_0 = N(0, I)`. The **gold** reward (what is
actually wanted) is `gold(z) = u . z - |z|^2 / 2 - q sum_i z_i^4 + a sum_i sin(2 z_i)` (a seeded direction `u`, a
quadratic cost, a quartic cost that is small where `pi_0` samples, a ripple; the grader's quadratic
features represent neither the quartic nor the ripple). The **grader** is learned: ridge regression of
noisy gold labels on the quadratic features of `n_train` plans from `pi_0`, so it is accurate where
`pi_0` puts mass and wrong far away. Two actors search against the grader with growing optimization
power, both measured by `d = sqrt(KL(pi || pi_0))` as in Gao et al. 2022 ("Scaling laws for reward model
overoptimization"):

* best-of-n: draw `n` plans, keep the grader's favourite. `KL = log n - (n - 1) / n` exactly
  (the density ratio is `n F(r)^(n-1)` with `F` the grader-score CDF, and
  `int_0^1 n u^(n-1) log(n u^(n-1)) du = log n - (n - 1) / n`).
* KL-regularised policy (the optimum RL with a KL penalty converges to): `pi_b(z) ∝ pi_0(z) exp(r(z) / b)`,
  on a grid `b = b_min + t` where `b_min = max(0, -min eig(H))` is where the policy stops existing.
  The grader is quadratic, `r(z) = c + g . z - z^T H z / 2`, so `pi_b` is Gaussian with precision
  `P = I + H / b` and mean `P^{-1} g / b`, and its KL has a closed form (for `b` with `P` positive).

Gold is estimated by Monte Carlo (standard errors reported). Gao et al.'s forms are fitted by least
squares on the gold improvement: `d (alpha - beta d)` for best-of-n, `d (alpha - beta log d)` for RL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mesascope.params import Param
from mesascope.scenarios.base import Check, stored_checks
from mesascope.scenarios.study import StudyContext, StudyOutcome, register_study

__all__ = [
    "bon_kl",
    "bon_kl_estimate",
    "fit_bon",
    "fit_rl",
    "gaussian_policy",
    "quadratic_features",
]


def bon_kl(n: int | np.ndarray) -> np.ndarray:
    """`KL(best-of-n || pi_0) = log n - (n - 1) / n` for a continuous grader score (no ties)."""
    n = np.asarray(n, np.float64)
    return np.log(n) - (n - 1) / n


def bon_kl_estimate(chosen_cdf: np.ndarray, n: int) -> tuple[float, float]:
    """Monte Carlo estimate (and its standard error) of the best-of-n KL.

    Args:
        chosen_cdf: `[M]` the base-policy CDF of the grader score of each chosen plan, `F(r(z))`,
            estimated from an independent sample of `pi_0`.
        n: The number of candidates.

    Returns:
        `(mean, standard error)` of `log(n F^(n-1))` over the chosen plans.
    """
    terms = math.log(n) + (n - 1) * np.log(np.clip(chosen_cdf, 1e-300, 1.0))
    return float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(len(terms)))


def quadratic_features(z: np.ndarray) -> np.ndarray:
    """`[..., D] -> [..., 1 + D + D(D+1)/2]`: constant, linear and upper-triangular quadratic terms."""
    d = z.shape[-1]
    iu = np.triu_indices(d)
    quad = (z[..., :, None] * z[..., None, :])[..., iu[0], iu[1]]
    return np.concatenate([np.ones(z.shape[:-1] + (1,)), z, quad], -1)


def _grader_quadratic(coef: np.ndarray, d: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Read `r(z) = c + g . z - z^T H z / 2` off ridge coefficients: `(c, g [D], H [D, D])`."""
    c, g, q = coef[0], coef[1 : 1 + d], coef[1 + d :]
    upper = np.zeros((d, d))
    upper[np.triu_indices(d)] = q
    sym = (upper + upper.T) / 2  # z^T sym z == sum_{i<=j} q_ij z_i z_j
    return float(c), g, -2 * sym


def gaussian_policy(g: np.ndarray, h: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The KL-regularised optimum `pi_b ∝ N(0, I) exp(r / b)` for a quadratic grader.

    Returns:
        `(mean [D], covariance [D, D], KL(pi_b || N(0, I)))`, or None when `I + H / b` is not positive
        definite (the grader is unbounded along some direction and no such policy exists).
    """
    d = len(g)
    prec = np.eye(d) + h / b
    w = np.linalg.eigvalsh(prec)
    if w.min() <= 1e-9:
        return None
    cov = np.linalg.inv(prec)
    mean = cov @ g / b
    kl = 0.5 * (np.trace(cov) + mean @ mean - d - np.linalg.slogdet(cov)[1])
    return mean, cov, float(kl)


def _fit(d: np.ndarray, y: np.ndarray, second: np.ndarray) -> dict[str, float]:
    x = np.stack([d, -second], 1)
    (alpha, beta), *_ = np.linalg.lstsq(x, y, rcond=None)
    pred = x @ np.array([alpha, beta])
    ss = float(np.sum((y - y.mean()) ** 2))
    return {"alpha": float(alpha), "beta": float(beta), "r2": 1 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")}


def fit_bon(d: np.ndarray, gold_gain: np.ndarray) -> dict[str, float]:
    """Least-squares fit of `gold_gain = d (alpha - beta d)`; the peak is at `d* = alpha / (2 beta)`."""
    out = _fit(d, gold_gain, d * d)
    out["d_peak"] = out["alpha"] / (2 * out["beta"]) if out["beta"] > 0 else float("inf")
    return out


def fit_rl(d: np.ndarray, gold_gain: np.ndarray) -> dict[str, float]:
    """Least-squares fit of `gold_gain = d (alpha - beta log d)`; the peak is at `d* = exp(alpha / beta - 1)`."""
    out = _fit(d, gold_gain, d * np.log(d))
    out["d_peak"] = math.exp(out["alpha"] / out["beta"] - 1) if out["beta"] > 0 else float("inf")
    return out


def _execute(ctx: StudyContext) -> StudyOutcome:
    cfg, prm = ctx.config, ctx.params
    dim, ripple, noise = int(prm["dim"]), float(prm["ripple"]), float(prm["label_noise"])
    quartic = float(prm["quartic"])
    n_train, mc = int(prm["n_train"]), int(cfg["mc_samples"])
    ns = [int(n) for n in cfg["best_of_n"]]
    temps = [float(b) for b in cfg["kl_temperatures"]]
    per_seed = []
    bon_gold, bon_proxy, rl_rows, chisel_rows = [], [], [], []
    kl_checks = []
    for i, seed in enumerate(ctx.seeds):
        rng = np.random.default_rng(seed)
        u = rng.normal(size=dim)
        u *= float(prm["signal"]) / np.linalg.norm(u)

        def gold(z: np.ndarray) -> np.ndarray:
            return z @ u - 0.5 * np.sum(z * z, -1) - quartic * np.sum(z**4, -1) + ripple * np.sum(np.sin(2 * z), -1)

        z_train = rng.normal(size=(n_train, dim))
        y = gold(z_train) + noise * rng.normal(size=n_train)
        feats = quadratic_features(z_train)
        lam = float(prm["ridge"])
        coef = np.linalg.solve(feats.T @ feats + lam * np.eye(feats.shape[1]), feats.T @ y)

        def proxy(z: np.ndarray) -> np.ndarray:
            return quadratic_features(z) @ coef

        base = rng.normal(size=(200_000, dim))
        base_gold, base_proxy = gold(base), np.sort(proxy(base))
        g0 = float(base_gold.mean())
        # best-of-n: reps x n candidates, keep the grader's favourite
        rows = []
        for n in ns:
            reps = max(64, mc // n)
            pick = np.empty((reps, dim))
            for start in range(0, reps, max(1, 2**18 // n)):  # chunks of at most ~256k candidates
                cand = rng.normal(size=(min(reps - start, max(1, 2**18 // n)), n, dim))
                pick[start : start + len(cand)] = cand[np.arange(len(cand)), np.argmax(proxy(cand), 1)]
            cdf = np.searchsorted(base_proxy, proxy(pick), side="right") / len(base_proxy)
            kl_hat, kl_se = bon_kl_estimate(cdf, n)
            gv = gold(pick)
            rows.append({"n": n, "kl": float(bon_kl(n)), "kl_estimate": kl_hat, "kl_se": kl_se,
                         "gold": float(gv.mean()) - g0, "gold_se": float(gv.std(ddof=1) / math.sqrt(reps)),
                         "proxy": float(proxy(pick).mean() - base_proxy.mean())})
            if 1 < n and 100 * n <= len(base_proxy):  # the empirical CDF must resolve the top 1/n of scores
                kl_checks.append((n, float(bon_kl(n)), kl_hat, kl_se))
        bon_gold.append(rows)
        c0, g_lin, h = _grader_quadratic(coef, dim)
        rl = []
        # pi_b exists iff I + H / b > 0, i.e. b > b_min = -min eig(H); the grid is offset from b_min
        b_min = max(0.0, -float(np.linalg.eigvalsh(h).min()))
        for t in temps:
            b = b_min + t
            pol = gaussian_policy(g_lin, h, b)
            if pol is None:
                continue
            mean, cov, kl = pol
            z = rng.multivariate_normal(mean, cov, size=mc)
            gv = gold(z)
            rl.append({"temperature": t, "b": b, "kl": kl, "gold": float(gv.mean()) - g0,
                       "gold_se": float(gv.std(ddof=1) / math.sqrt(mc)), "proxy": float(proxy(z).mean() - base_proxy.mean())})
        rl_rows.append(rl)
        # the grader as a chisel: a Gaussian policy fitted by maximum likelihood to the base policy's plans
        # the grader ranks in its top 1/n (filtered imitation); it never queries the grader at run time
        raw = proxy(base)
        chisel = []
        for n in ns[1:]:
            top = base[raw >= np.quantile(raw, 1 - 1 / n)]
            if len(top) < 4 * dim:
                continue
            mu, cov = top.mean(0), np.cov(top, rowvar=False)
            kl = 0.5 * (np.trace(cov) + mu @ mu - dim - np.linalg.slogdet(cov)[1])
            z = rng.multivariate_normal(mu, cov, size=mc)
            chisel.append({"n": n, "kl": float(kl), "gold": float(gold(z).mean()) - g0,
                           "proxy": float(proxy(z).mean() - base_proxy.mean())})
        chisel_rows.append(chisel)
        per_seed.append({"seed": seed, "grader_r2_on_pi0": float(1 - np.var(base_gold - proxy(base)) / np.var(base_gold))})
        ctx.progress("search", (i + 1) / len(ctx.seeds))

    # Pool seeds: mean gold/proxy per n (best-of-n) and per temperature (RL)
    d_bon = np.sqrt(bon_kl(np.array(ns)))
    gold_bon = np.mean([[r["gold"] for r in rows] for rows in bon_gold], 0)
    proxy_bon = np.mean([[r["proxy"] for r in rows] for rows in bon_gold], 0)
    common = sorted(set.intersection(*[{r["temperature"] for r in rl} for rl in rl_rows]), reverse=True)
    rl_by_t = [[next(r for r in rl if r["temperature"] == t) for t in common] for rl in rl_rows]
    d_rl = np.sqrt(np.mean([[r["kl"] for r in rl] for rl in rl_by_t], 0))
    gold_rl = np.mean([[r["gold"] for r in rl] for rl in rl_by_t], 0)
    proxy_rl = np.mean([[r["proxy"] for r in rl] for rl in rl_by_t], 0)
    pos = d_bon > 0
    fb = fit_bon(d_bon[pos], gold_bon[pos])
    peak_bon, peak_rl = float(d_bon[int(np.argmax(gold_bon))]), float(d_rl[int(np.argmax(gold_rl))])
    # near b_min the policy runs off along the grader's flattest direction and gold collapses by orders of
    # magnitude; the RL form is fitted over d <= 2 x the measured peak, where the curve is a Goodhart bend
    in_range = d_rl <= 2 * peak_rl
    fr = fit_rl(d_rl[in_range], gold_rl[in_range])
    fr["fitted_on_d_up_to"] = float(d_rl[in_range].max())

    n_ch = min(len(c) for c in chisel_rows)
    d_ch = np.sqrt(np.mean([[r["kl"] for r in c[:n_ch]] for c in chisel_rows], 0))
    gold_ch = np.mean([[r["gold"] for r in c[:n_ch]] for c in chisel_rows], 0)
    proxy_ch = np.mean([[r["proxy"] for r in c[:n_ch]] for c in chisel_rows], 0)

    def draw(fig: Any) -> None:
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        ax1.plot(d_ch, gold_ch, "^-", color="tab:green", label="gold, grader as chisel")
        xs = np.linspace(1e-3, d_bon.max(), 200)
        ax1.plot(d_bon, gold_bon, "o-", color="tab:orange", label="gold")
        ax1.plot(d_bon, proxy_bon, "s--", color="tab:blue", label="grader")
        ax1.plot(xs, xs * (fb["alpha"] - fb["beta"] * xs), ":", color="k", label="fit d(α-βd)")
        ax1.set_title("best-of-n")
        xr = np.linspace(d_rl.min(), d_rl[in_range].max(), 200)
        ax2.plot(d_rl[in_range], gold_rl[in_range], "o-", color="tab:orange", label="gold")
        ax2.plot(d_rl[in_range], proxy_rl[in_range], "s--", color="tab:blue", label="grader")
        ax2.plot(xr, xr * (fr["alpha"] - fr["beta"] * np.log(xr)), ":", color="k", label="fit d(α-β log d)")
        ax2.set_title(f"KL-regularised policy (d <= {d_rl[in_range].max():.2g})")
        for ax in (ax1, ax2):
            ax.set_xlabel("d = sqrt(KL(pi || pi_0))")
            ax.set_ylabel("improvement over pi_0")
            ax.legend(fontsize=7)

    d_cmp = float(min(d_ch[-1], d_bon[-1]))
    chisel_gap = float(np.interp(d_cmp, d_ch, proxy_ch - gold_ch))
    bon_gap = float(np.interp(d_cmp, d_bon, proxy_bon - gold_bon))
    worst_z = max(abs(hat - exact) / se for _, exact, hat, se in kl_checks)
    checks = [
        Check("best-of-n KL estimate vs log n - (n-1)/n (n <= 2000): max |z|", worst_z, "< 4 standard errors", worst_z < 4),
        Check("best-of-n: grader score rises with n", float(proxy_bon[-1] - proxy_bon[0]), "> 0 and monotone",
              bool(np.all(np.diff(proxy_bon) > 0))),
        Check("best-of-n: grader - gold gap grows with n", float((proxy_bon - gold_bon)[-1]), "increasing (errors are selected for)",
              bool(np.all(np.diff(proxy_bon - gold_bon) > -0.05)) and (proxy_bon - gold_bon)[-1] > (proxy_bon - gold_bon)[1]),
        Check("best-of-n: fitted d(alpha - beta d) has a peak", fb["d_peak"], "finite (beta > 0)", fb["beta"] > 0),
        Check("best-of-n: gold peaks before the largest n", peak_bon, f"< {d_bon.max():.3g} (overoptimization)",
              peak_bon < d_bon.max() and gold_bon[-1] < gold_bon.max()),
        Check("grader as chisel: grader - gold gap at its largest d, minus best-of-n's (interpolated)", chisel_gap - bon_gap,
              "< 0 (a system shaped by the grader exploits its errors less than a search against it)", chisel_gap < bon_gap),
        Check("KL-regularised: gold peaks before the largest KL", peak_rl, f"< {d_rl.max():.3g}",
              peak_rl < d_rl.max() and gold_rl[-1] < gold_rl.max()),
    ]
    table = [{"method": "best-of-n", "alpha": fb["alpha"], "beta": fb["beta"], "R^2": fb["r2"],
              "fitted peak d": fb["d_peak"], "measured peak d": peak_bon},
             {"method": "KL-regularised", "alpha": fr["alpha"], "beta": fr["beta"], "R^2": fr["r2"],
              "fitted peak d": fr["d_peak"], "measured peak d": peak_rl}]
    findings = {
            "best_of_n": {"n": ns, "d": d_bon, "gold": gold_bon, "grader": proxy_bon, "fit": fb, "per_seed": bon_gold},
            "kl_regularised": {"temperature": common, "d": d_rl, "gold": gold_rl, "grader": proxy_rl, "fit": fr, "per_seed": rl_rows},
            "chisel": {"description": "Gaussian policy fitted to the base policy's top-1/n plans by grader score",
                       "n": [r["n"] for r in chisel_rows[0][:n_ch]], "d": d_ch, "gold": gold_ch, "grader": proxy_ch,
                       "per_seed": chisel_rows},
            "kl_checks": [{"n": n, "exact": e, "estimate": h, "se": s} for n, e, h, s in kl_checks],
            "overoptimization_begins_at_d": {"best_of_n": peak_bon, "kl_regularised": peak_rl},
            "grader_fit": per_seed,
            "tables": {"Gao et al. fits (gold improvement vs d)": table},
            "checks": [c.to_dict() for c in checks],
    }
    return StudyOutcome(systems=(), findings=findings, figures={"goodhart": draw})


EXPECTED = (
    "The grader's value rises monotonically with optimization power while gold rises then falls "
    "(overoptimization); best-of-n KL = log n - (n-1)/n; Gao et al.'s forms fit the gold curves."
)

PARAMS = (
    Param("dim", "int", 12, "plan dimensions", low=2, high=256),
    Param("n_train", "int", 200, "gold labels the grader is fitted on", low=10, high=1_000_000),
    Param("label_noise", "float", 2.0, "noise of the gold labels", low=0.0, high=100.0),
    Param("ripple", "float", 0.3, "amplitude of gold's ripple term", low=0.0, high=10.0),
    Param("ridge", "float", 1.0, "ridge penalty of the grader's regression", low=0.0, high=1e6),
    Param("quartic", "float", 0.05, "gold's quartic cost", low=0.0, high=10.0),
    Param("signal", "float", 3.0, "gold's linear signal", low=0.0, high=100.0),
)
SETTINGS = (
    Param("mc_samples", "int", 20000, "Monte Carlo samples per gold estimate", low=100, high=100_000_000),
    Param("best_of_n", "ints", (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384), "the n of best-of-n",
          low=1, high=10_000_000, length=(3, 64)),
    Param("kl_temperatures", "floats", (64, 32, 16, 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03, 0.015),
          "temperatures of the KL-regularised policy", low=1e-6, high=1e6, length=(3, 64)),
)


register_study(
    "grader-v0",
    description=(
        "An actor searches a plan space (R^D, base policy N(0, I)) against a grader learned by ridge regression "
        "on noisy gold labels (seed 003); best-of-n and the KL-regularised optimum, gold and grader value "
        "against d = sqrt(KL), with Gao et al. 2022's functional forms fitted; contrasted with a policy fitted to "
        "the grader's favourite base-policy plans (the grader as a chisel)."
    ),
    expected_finding=EXPECTED,
    optimizer="best-of-n / KL-regularised search",
    settings=SETTINGS,
    full={"mc_samples": 100000, "best_of_n": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536],
          "kl_temperatures": [128, 64, 32, 16, 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125]},
    execute=_execute,
    check=stored_checks,
    params=PARAMS,
    summary="best-of-n and KL-regularised search against a learned grader: over-optimization (Gao et al. 2022)",
)
