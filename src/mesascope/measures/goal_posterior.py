"""The candidate-goal posterior: which of a scenario's candidate goals explains a system's behaviour (SPEC.md section 4).

Each candidate goal `g` (reward `w_g . phi`) defines a Boltzmann-rational model of behaviour,
`pi_g(a | s) ∝ exp(beta_g * Q*_g(s, a))` (Baker, Saxe and Tenenbaum 2009, "Action understanding as
inverse planning"; Jeon, Milli and Dragan 2020, "Reward-rational (implicit) choice"). The rationality
`beta_g` (and a lapse rate) is fitted per goal by maximum expected log-likelihood of the system's actions
(`boltzmann_fit`), and the goals are compared by that likelihood (`goal_posterior`, `GoalPosterior`).
This answers "did it go for the cheese or the corner?", and says when no goal explains the behaviour
(the threshold `kappa` of SPEC.md section 4). The fit over the linear span of the features, rather than
over named goals, is `mesascope.measures.mce_irl`.

Everything is exact on enumerable levels: every state's action distribution is known, so every
expectation is a sum over states, never a sample. Conventions (shared with `mesascope.measures.mce_irl`):

- Terminal states are absorbing and every feature is zero out of them (`mesascope.levels.grid.step`):
  nothing the system does there has consequences, so they never count as evidence (their weight is zero
  in every log-likelihood).
- The evidence is weighted by the system's own discounted occupancy of live states from the start state
  (`system_state_weights`); "per step" means per unit of that state weight.
- Log-likelihoods are in nats. Rationalities `beta` are in nats per unit of `Q` (inverse reward units).

The measures take a `[L]` batch of `TabularMDP`s; `Q*` values come from `mesascope.solve.dp`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.scores import reach_flags
from mesascope.programs import cached_jit
from mesascope.solve.dp import discounted_occupancy, stop_on_arrival, value_iteration

__all__ = [
    "DEFAULT_BETAS",
    "DEFAULT_EXPLAIN_THRESHOLD",
    "DEFAULT_LAPSES",
    "BoltzmannFit",
    "GoalPosterior",
    "boltzmann_fit",
    "boltzmann_policy",
    "candidate_q_values",
    "expected_log_likelihood",
    "goal_posterior",
    "goal_q_values",
    "posterior_from_q",
    "posteriors_from_q",
    "scenario_goal_posterior",
    "system_state_weights",
]

DEFAULT_BETAS: tuple[float, ...] = (0.0,) + tuple(float(b) for b in np.logspace(-3.0, 4.0, 57))
"""Rationality grid for `goal_posterior`: 0 (the uniform policy) and 8 points per decade from 1e-3 to 1e4.

In inverse reward units: with rewards of order 1 and `gamma = 0.99`, advantages of adjacent actions in a
maze are about 1e-2 to 1, so `beta = 1e4` is deterministic for practical purposes. The best grid point is
then refined by bisection (the expected log-likelihood is concave in `beta`)."""

DEFAULT_LAPSES: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
"""Lapse-rate grid for `goal_posterior`: the share of decisions the model lets the system take at random.

The Boltzmann-rational model with lapses (`pi = (1 - eps) softmax(beta Q) + eps / A`, the "lapse rate" of
psychophysics) is robust to a minority of states where the system does something arbitrary and
confident, such as looping between two cells forever. Without lapses, each such state costs the model
`beta` times an advantage, so a few loops drag the fitted `beta` of every goal to about 0 and hide what
the system does everywhere else (measured on cheese-corner-v0 deploy levels: corner fit quality 0.003
nats per step without lapses, 0.06-0.12 with them; see `boltzmann_fit`). `eps = 0` is always tried first
and kept unless a lapse improves the likelihood."""

DEFAULT_EXPLAIN_THRESHOLD = 0.1
"""Nats per step by which a goal must predict the system's actions better than the uniform policy to count
as explaining them. With 4 actions the uniform policy scores `-log 4 = -1.39` nats per step and a
deterministic system perfectly explained scores 0, so 0.1 nats is about 7% of the largest possible
improvement: a system at or below it is "not capable of anything in particular" (SPEC.md section 4).
An optimal system that splits ties between `k` equally good actions gains at most `log(A / k)` there
(0.29 nats where three "stay" moves tie in a dead end), which is why the bar is set well below `log A`."""

_BISECTION_STEPS = 40


# ------------------------------------------------------------------------------- Boltzmann-rational model


def boltzmann_policy(q: jax.Array, beta: jax.Array | float) -> jax.Array:
    """The Boltzmann-rational policy `pi(a | s) ∝ exp(beta * Q(s, a))`: float32 `[..., S, A]` (SPEC.md §4).

    Applied to the ordinary optimal `Q*_g` of a goal, this is the model `goal_posterior` uses. The agent
    plans optimally and errs in proportion to how little an error costs. We use it rather than the soft
    (MaxEnt) policy because `Q*_g` is solved once per goal and the rationality then enters only through
    one multiplication, so fitting `beta` is a concave one-dimensional problem. The soft policy's `Q_soft`
    depends on `beta` itself (one re-solve per candidate `beta`), and its entropy bonuses reward reaching
    or avoiding terminal states for reasons that have nothing to do with the goal.

    Args:
        q: float `[..., S, A]`, e.g. `Q*` from `mesascope.solve.dp.value_iteration`.
        beta: Rationality, `>= 0` (0 gives the uniform policy), broadcastable to `q.shape[:-2]`.
    """
    return jax.nn.softmax(_beta_times_advantage(q, beta), axis=-1)


def _beta_times_advantage(q: jax.Array, beta) -> jax.Array:
    # Subtracting the per-state maximum first changes nothing mathematically and keeps float32 precise
    # when beta * Q is large (beta = 1e4 times values of order 100).
    adv = q - jnp.max(q, axis=-1, keepdims=True)
    return jnp.expand_dims(jnp.asarray(beta, q.dtype), (-1, -2)) * adv


# ------------------------------------------------------------------------------------------- evidence


def system_state_weights(tab: TabularMDP, probs: jax.Array, gamma: float) -> jax.Array:
    """Default evidence weights: the system's own discounted occupancy of live states, float32 `[L, S]`.

    States the system never visits say nothing about what it pursues there in practice, and its actions in
    far-away states are discounted as its returns are. Terminal states get weight 0. Each level's weights
    sum to the expected discounted number of decisions before the episode ends (at most `1 / (1 - gamma)`).

    Args:
        tab: Tabular levels, batched `[L, ...]`.
        probs: float32 `[L, S, A]`, the system's action probabilities.
        gamma: Discount.
    """
    return _state_weights(tab.next_state, tab.start, tab.terminal, probs, gamma)


@cached_jit
def _state_weights(next_state, start, terminal, probs, gamma):
    mu = jax.vmap(discounted_occupancy, in_axes=(0, 0, 0, None))(next_state, probs, start, gamma)
    return jnp.where(terminal, 0.0, mu.sum(-1))


def expected_log_likelihood(probs: jax.Array, model: jax.Array, state_weights: jax.Array) -> jax.Array:
    """`sum_s w(s) sum_a p(a | s) log model(a | s)`: float32 `[...]`, the expected log-likelihood in nats.

    Args:
        probs: float32 `[..., S, A]`, the system's action probabilities.
        model: float32 `[..., S, A]`, the model policy.
        state_weights: float32 `[..., S]`.
    """
    # xlogy: 0 * log 0 = 0 where the system never takes an action the model rules out; states of weight
    # 0 contribute 0 even where the model rules out what the system does there (no 0 * -inf = NaN).
    per_state = jnp.sum(jax.scipy.special.xlogy(probs, model), -1)
    return jnp.sum(jnp.where(state_weights > 0, state_weights * per_state, 0.0), -1)


# ---------------------------------------------------------------------------- Boltzmann goal posterior


class BoltzmannFit(NamedTuple):
    """Maximum-likelihood rationality of a Boltzmann-rational model over one `Q` (batch dims `[...]`).

    Attributes:
        beta: float32 `[...]`, the fitted rationality.
        lapse: float32 `[...]`, the fitted lapse rate `eps` (0 when lapses do not improve the fit).
        total_loglik: float32 `[...]`, expected log-likelihood of the system's actions summed over all
            weighted states (nats).
        loglik: float32 `[...]`, `total_loglik / n_steps`, nats per step.
        fit_quality: float32 `[...]`, `loglik + log A`: nats per step gained over the uniform policy.
        n_steps: float32 scalar, the total state weight (the evidence's size in steps).
    """

    beta: jax.Array
    lapse: jax.Array
    total_loglik: jax.Array
    loglik: jax.Array
    fit_quality: jax.Array
    n_steps: jax.Array


def _lapse_gain_at(beta, eps, adv, probs, w):
    """Gain over the uniform policy of the model `(1 - eps) softmax(beta adv) + eps / A`, for `eps > 0`.

    `log pi(a) + log A = logaddexp(log(1 - eps) + log A + log softmax(beta adv)(a), log eps)`: finite for
    every action, so a confident action the goal rules out costs at most `-log eps` nats.
    """
    return _lapse_gain_from(jax.nn.log_softmax(beta * adv, axis=-1), eps, probs, w)


def _lapse_gain_from(log_soft, eps, probs, w):
    """`_lapse_gain_at` given `log softmax(beta adv)` (shared by every lapse rate at one beta)."""
    a = log_soft.shape[-1]
    log_model = jnp.logaddexp(jnp.log1p(-eps) + jnp.log(a) + log_soft, jnp.log(eps))
    per_state = jnp.sum(jnp.where(probs > 0, probs * log_model, 0.0), -1)
    return jnp.sum(jnp.where(w > 0, w * per_state, 0.0))


def _golden_max(f, lo, hi, steps):
    """Maximiser of `f` on `[lo, hi]` by golden-section search (exact for unimodal `f`)."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def body(_, bracket):
        lo, hi = bracket
        x1 = hi - ratio * (hi - lo)
        x2 = lo + ratio * (hi - lo)
        left = f(x1) >= f(x2)
        return jnp.where(left, lo, x1), jnp.where(left, x2, hi)

    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return 0.5 * (lo + hi)


def _gain_at(beta, adv, probs, w):
    """`sum_s w(s) sum_a p(a|s) [log pi_beta(a|s) + log A]`: the log-likelihood gained over the uniform policy.

    With `adv = Q - max_a Q <= 0`, `log pi_beta(a) + log A = beta adv(a) - log mean_b exp(beta adv(b))`, and
    `log mean exp` is evaluated as `log1p(mean(expm1(.)))`. Every term is then computed to float32
    precision relative to its own size, not to `log A`, so tiny gains (a nearly uniform system) are not
    lost to rounding and the maximiser over `beta` is well defined.
    """
    x = beta * adv
    per_state = jnp.sum(probs * x, -1) - jnp.log1p(jnp.mean(jnp.expm1(x), -1))
    return jnp.sum(jnp.where(w > 0, w * per_state, 0.0))


def _dgain_at(beta, adv, probs, w):
    # d/dbeta of the expected log-likelihood: E_w[E_p adv - E_pi_beta adv]; decreasing in beta (concavity).
    pi = jax.nn.softmax(beta * adv, axis=-1)
    return jnp.sum(jnp.where(w > 0, w * jnp.sum((probs - pi) * adv, -1), 0.0))


@jax.jit
def boltzmann_fit(
    q: jax.Array, probs: jax.Array, state_weights: jax.Array, betas: jax.Array, lapses: jax.Array | None = None
) -> BoltzmannFit:
    """Fit one rationality `beta >= 0`, shared by all levels, to a system's actions (SPEC.md section 4).

    Maximises `ell(beta) = sum_{l, s} w(l, s) sum_a p(a | l, s) log softmax(beta Q(l, s, .))(a)`. `ell` is
    concave in `beta` (its second derivative is minus a weighted variance of `Q` under the model), so the
    grid points within rounding of the best one, widened by a neighbour on each side, bracket the
    maximiser, and bisection on the sign of `ell'` finds it. Where `ell` is flat to float32 resolution,
    the smallest grid value on the plateau is reported: 0 for a uniform system, and for an exactly
    optimal system the rationality beyond which its likelihood no longer changes (its likelihood only
    approaches its supremum as `beta -> infinity`; the grid's largest value bounds the search).
    `beta = 0` is the uniform policy; negative rationalities (a system that avoids the goal) are not
    considered.

    Lapses (`lapses`, see `DEFAULT_LAPSES`): the model `(1 - eps) softmax(beta Q) + eps / A` is then also
    fitted, on the grid `betas x lapses` (positive lapses only) with a golden-section refinement of `beta`
    at the best lapse, and replaces the lapse-free fit only when it raises the likelihood by more than
    rounding. A system that some goal explains exactly keeps `eps = 0` and the lapse-free `beta`.

    Args:
        q: float32 `[L, S, A]`, the goal's `Q*` on every level.
        probs: float32 `[L, S, A]`, the system's action probabilities.
        state_weights: float32 `[L, S]`, evidence weight of each state (0 for terminal states).
        betas: float32 `[B]`, increasing, nonnegative grid.
        lapses: Optional float32 `[E]` lapse rates in `[0, 1)` (entries `<= 0` are ignored); None fits
            the lapse-free model only.

    Returns:
        `BoltzmannFit` of scalars.
    """
    betas = jnp.asarray(betas, q.dtype)
    adv = q - jnp.max(q, axis=-1, keepdims=True)
    # lax.map, not vmap: on XLA CPU (jax 0.10.2) the vmapped form of this reduction returned wrong values
    # for every grid point past the first 2**17 elements of the batched [B, L, S, A] intermediate.
    grid = jax.lax.map(lambda b: _gain_at(b, adv, probs, state_weights), betas)
    n = jnp.sum(jnp.where(state_weights > 0, state_weights, 0.0))
    best = jnp.max(grid)
    # Where the likelihood is flat to float32 resolution (a uniform system, or an exactly optimal one whose
    # likelihood has saturated), report the smallest such beta rather than whichever rounding favours.
    tol = 1e-6 * jnp.abs(best)
    near = grid >= best - tol
    first = jnp.argmax(near)
    last = betas.shape[0] - 1 - jnp.argmax(near[::-1])
    lo = betas[jnp.maximum(first - 1, 0)]
    hi = betas[jnp.minimum(last + 1, betas.shape[0] - 1)]

    def bisect(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        rising = _dgain_at(mid, adv, probs, state_weights) > 0
        return jnp.where(rising, mid, lo), jnp.where(rising, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, bisect, (lo, hi))
    refined = 0.5 * (lo + hi)
    gain_refined = _gain_at(refined, adv, probs, state_weights)
    # Concavity puts the maximiser in [lo, hi]; keep the refinement only if it is a real improvement.
    better = gain_refined > grid[first] + tol
    beta = jnp.where(better, refined, betas[first])
    gain = jnp.where(better, gain_refined, grid[first])
    lapse = jnp.zeros((), q.dtype)
    if lapses is not None:
        # Positive lapses only; the lapse-free fit above is exact and is the default.
        eps_grid = jnp.clip(jnp.asarray(lapses, q.dtype), 1e-6, 0.999)
        valid = jnp.asarray(lapses, q.dtype) > 0
        bb, ee = jnp.meshgrid(betas, eps_grid, indexing="ij")

        def row(beta):
            # The Boltzmann part is shared by every lapse rate at this beta: computed once, not per lapse.
            log_soft = jax.nn.log_softmax(beta * adv, axis=-1)
            return jax.lax.map(lambda eps: _lapse_gain_from(log_soft, eps, probs, state_weights), eps_grid)

        flat = jax.lax.map(row, betas).ravel()
        flat = jnp.where(jnp.broadcast_to(valid[None, :], bb.shape).ravel(), flat, -jnp.inf)
        j = jnp.argmax(flat) % eps_grid.shape[0]
        eps = eps_grid[j]
        column = flat.reshape(bb.shape)[:, j]
        # As for the lapse-free fit: on a plateau (flat to float32 resolution) the smallest beta is reported,
        # so the reported rationality does not depend on rounding noise in the sums.
        top = jnp.max(column)
        i = jnp.argmax(column >= top - 1e-6 * jnp.abs(top))
        lo_l = betas[jnp.maximum(i - 1, 0)]
        hi_l = betas[jnp.minimum(i + 1, betas.shape[0] - 1)]
        f = lambda b: _lapse_gain_at(b, eps, adv, probs, state_weights)  # noqa: E731
        b_ref = _golden_max(f, lo_l, hi_l, _BISECTION_STEPS)
        g_ref = f(b_ref)
        refine = g_ref > top + 1e-6 * jnp.abs(top)
        b_l = jnp.where(refine, b_ref, betas[i])
        g_l = jnp.where(refine, g_ref, column[i])
        # A lapse must beat the lapse-free fit by more than float32 noise (1e-6 nats per step).
        use = g_l > gain + tol + 1e-6 * n
        beta = jnp.where(use, b_l, beta)
        lapse = jnp.where(use, eps, lapse)
        gain = jnp.where(use, g_l, gain)
    safe_n = jnp.maximum(n, 1e-12)
    total = gain - n * jnp.log(jnp.asarray(q.shape[-1], q.dtype))
    return BoltzmannFit(
        beta=beta, lapse=lapse, total_loglik=total, loglik=total / safe_n, fit_quality=gain / safe_n, n_steps=n
    )


@dataclasses.dataclass(frozen=True)
class GoalPosterior:
    """Which candidate goal explains a system's behaviour, and how well (SPEC.md section 4).

    All arrays are `[G]`, one entry per goal, in the order of `names`.

    Attributes:
        names: Goal names.
        beta: float32 `[G]`, fitted rationality per goal (inverse reward units). For a system exactly
            optimal for the goal, the smallest grid value at which the likelihood has saturated.
        lapse: float32 `[G]`, fitted lapse rate per goal (share of decisions modelled as random; 0
            when the lapse-free model fits best).
        loglik: float32 `[G]`, expected log-likelihood of the system's actions per step (nats) under the
            goal's fitted Boltzmann-rational model.
        uniform_loglik: float, `-log A`, the uniform policy's log-likelihood per step.
        fit_quality: float32 `[G]`, `loglik - uniform_loglik`: nats per step the goal explains beyond chance.
        total_loglik: float32 `[G]`, the expected log-likelihood summed over all evidence.
        posterior: float32 `[G]`, uniform prior times `exp(total_loglik)`, normalised: the posterior after
            seeing all the evidence (`n_steps` steps). It saturates to 0/1 quickly, as a real posterior does.
        posterior_per_step: float32 `[G]`, `softmax(loglik)`: the posterior after one step's worth of
            evidence (geometric mean likelihood per step). It does not saturate, so it shows how close the
            competing goals are.
        explains: bool `[G]`, `fit_quality >= threshold` (`kappa`, SPEC.md section 4).
        threshold: The threshold used (nats per step).
        n_steps: float, total state weight (the evidence's size in discounted steps).
        best: Name of the goal with the highest posterior (check `explains`, or `explained`, before
            reading it as the system's goal).
    """

    names: tuple[str, ...]
    beta: np.ndarray
    lapse: np.ndarray
    loglik: np.ndarray
    uniform_loglik: float
    fit_quality: np.ndarray
    total_loglik: np.ndarray
    posterior: np.ndarray
    posterior_per_step: np.ndarray
    explains: np.ndarray
    threshold: float
    n_steps: float
    best: str

    @property
    def explained(self) -> bool:
        """True when at least one candidate explains the behaviour better than chance by `threshold`."""
        return bool(self.explains.any())

    def as_dict(self) -> dict[str, Any]:
        """Per-goal numbers keyed by goal name (JSON-friendly)."""
        per_goal = {
            name: {
                "beta": float(self.beta[i]),
                "lapse": float(self.lapse[i]),
                "loglik": float(self.loglik[i]),
                "fit_quality": float(self.fit_quality[i]),
                "posterior": float(self.posterior[i]),
                "posterior_per_step": float(self.posterior_per_step[i]),
                "explains": bool(self.explains[i]),
            }
            for i, name in enumerate(self.names)
        }
        return {
            "goals": per_goal,
            "best": self.best,
            "explained": self.explained,
            "uniform_loglik": self.uniform_loglik,
            "threshold": self.threshold,
            "n_steps": self.n_steps,
        }


@jax.jit
def goal_q_values(
    next_state: jax.Array,
    features: jax.Array,
    goal_weights: jax.Array,
    gamma: float,
    *,
    terminal: jax.Array | None = None,
    reach: jax.Array | None = None,
) -> jax.Array:
    """Every candidate goal's optimal `Q*` on every level: float32 `[G, L, S, A]` (SPEC.md section 2).

    Args:
        next_state: int32 `[L, S, A]`.
        features: float32 `[L, S, A, K]`.
        goal_weights: float32 `[G, K]`.
        gamma: Discount.
        terminal: bool `[L, S]`, needed when some goal is a reach goal.
        reach: Optional bool `[G]`: goals valued at first arrival, whose `Q*` is solved on their own
            dynamics (`mesascope.solve.dp.stop_on_arrival`).
    """
    if reach is None or terminal is None:
        reach = jnp.zeros((goal_weights.shape[0],), bool)
        terminal = jnp.zeros(next_state.shape[:2], bool)

    def q_star(ns, ft, term, w, rch):
        r = ft @ w
        return value_iteration(stop_on_arrival(ns, r, term, rch), r, gamma).q

    return jax.vmap(
        lambda w, rch: jax.vmap(lambda ns, ft, term: q_star(ns, ft, term, w, rch))(next_state, features, terminal)
    )(goal_weights, jnp.asarray(reach))


def candidate_q_values(
    tab: TabularMDP, goal_weights: jax.Array, gamma: float, *, reach: Sequence[bool] | np.ndarray | None = None
) -> jax.Array:
    """`goal_q_values` of a batch of tabular levels, reach flags validated: float32 `[G, L, S, A]` (SPEC.md §2).

    The one solve of every candidate goal that `goal_posterior` and the shard fits
    (`mesascope.measures.shards`) share.

    Args:
        tab: Tabular levels, batched `[L, ...]`.
        goal_weights: float `[G, K]`, one row of feature weights per candidate goal.
        gamma: Discount.
        reach: Optional bool `[G]`: reach goals (`Objective.reach`), valued at first arrival.
    """
    goal_weights = jnp.asarray(goal_weights, jnp.float32)
    flags = reach_flags(tab, reach, goal_weights.shape[0])
    return goal_q_values(
        tab.next_state, jnp.asarray(tab.features, jnp.float32), goal_weights, gamma, terminal=tab.terminal, reach=flags
    )


@cached_jit
def _fits_compact(q, probs, take, weightings, betas, lapses) -> BoltzmannFit:
    # Each weighting's own evidence rows (`take` [W, N]) are gathered here, inside the compiled program (one
    # program per padded size). One goal and one weighting at a time (lax.map): see the note in
    # `boltzmann_fit` about vmapped reductions.
    g, _, _, a = q.shape
    q_flat, probs_flat = q.reshape(g, -1, a), probs.reshape(-1, a)

    def one(rows_w):
        rows, w = rows_w
        q_c, probs_c = q_flat[:, rows], probs_flat[rows]
        return jax.lax.map(lambda qg: boltzmann_fit(qg, probs_c, w, betas, lapses), q_c)

    return jax.lax.map(one, (take, weightings))


def _bucket(n: int) -> int:
    """Row count to pad `n` evidence rows to: two sizes per octave, so shapes (and compilations) repeat."""
    size = 256
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def goal_posterior(
    tab: TabularMDP,
    probs: jax.Array,
    goal_weights: jax.Array,
    gamma: float,
    *,
    names: Sequence[str] | None = None,
    state_weights: jax.Array | None = None,
    betas: Sequence[float] | jax.Array = DEFAULT_BETAS,
    threshold: float = DEFAULT_EXPLAIN_THRESHOLD,
    lapses: Sequence[float] | None = DEFAULT_LAPSES,
    reach: Sequence[bool] | np.ndarray | None = None,
) -> GoalPosterior:
    """Posterior over candidate goals under Boltzmann-rational models with fitted rationality (SPEC.md §4).

    For each goal `g` (reward `w_g . phi`): solve `Q*_g` on every level, fit one `beta_g` for all levels
    by maximum expected log-likelihood of the system's actions (`boltzmann_fit`; a profile likelihood:
    `beta` is maximised out, not integrated), and compare goals by that likelihood with a uniform prior.
    `posterior` is `softmax(total_loglik)` (through a logsumexp, so it is stable however large the
    evidence), `posterior_per_step` is `softmax(loglik per step)`; both are computed from the gains over
    the uniform policy, which differ from the log-likelihoods by the same constant for every goal.

    Lapses: each goal's model is `(1 - eps) softmax(beta_g Q*_g) + eps / A` with the lapse rate `eps`
    fitted too (`DEFAULT_LAPSES`; `eps = 0`, the plain Boltzmann model, unless a lapse raises the
    likelihood). Rescaling a goal's reward rescales its fitted `beta` inversely and changes nothing else,
    so goals whose values differ in scale (a reward paid on every step, such as tamper's button, sums to
    about 100; the cheese pays once) are compared fairly without normalisation. What a lapse-free fit cannot absorb is a few
    states where the system acts confidently against every goal (loops): they cost `beta` times an
    advantage each and pull every goal's `beta` towards 0. The lapse caps that cost at `-log eps` nats
    per such decision.

    Evidence weighting: by default each state counts with the system's own discounted occupancy from the
    start state (`system_state_weights`), computed exactly. The question is what the system is doing
    where it actually goes; states it never reaches (walls, other branches of the maze) would otherwise
    dominate and reward goals for agreeing with it in places that never matter. Terminal states always
    get weight 0.

    The uniform policy is the `beta = 0` member of every goal's model, so `fit_quality >= 0` up to
    rounding, and a system that no goal explains has `fit_quality` near 0 for every goal: `explains` is
    all False and `best` is then not a finding.

    Args:
        tab: Tabular levels, batched `[L, ...]`.
        probs: float32 `[L, S, A]`, the system's action probabilities on every state
            (`mesascope.measures.scores.system_action_probs`).
        goal_weights: float32 `[G, K]`, one row of feature weights per candidate goal.
        gamma: Discount.
        names: `G` goal names (default "goal_0", "goal_1", ...).
        state_weights: Optional float32 `[L, S]` evidence weights replacing the default.
        betas: Increasing nonnegative rationality grid (see `DEFAULT_BETAS`).
        threshold: `fit_quality` (nats per step) above which a goal counts as explaining the behaviour.
        lapses: Lapse-rate grid (see `DEFAULT_LAPSES`); None or empty fits the lapse-free model only.
        reach: Optional bool `[G]`: reach goals (`Objective.reach`), whose `Q*` counts only the way to
            first arrival.

    Returns:
        `GoalPosterior`.
    """
    goal_weights = jnp.asarray(goal_weights, jnp.float32)
    g = goal_weights.shape[0]
    names = tuple(names) if names is not None else tuple(f"goal_{i}" for i in range(g))
    if len(names) != g:
        raise ValueError(f"got {len(names)} names for {g} goals (rows of goal_weights)")
    grid = _check_grid(betas)
    probs = jnp.asarray(probs, jnp.float32)
    if state_weights is None:
        state_weights = system_state_weights(tab, probs, gamma)
    q = candidate_q_values(tab, goal_weights, gamma, reach=reach)
    return posterior_from_q(
        q, tab.terminal, probs, state_weights, names=names, betas=grid, threshold=threshold, lapses=lapses
    )


def _check_grid(betas: Sequence[float] | jax.Array) -> np.ndarray:
    grid = np.asarray(betas, np.float32)
    if grid.ndim != 1 or grid.size < 2 or (grid < 0).any() or (np.diff(grid) <= 0).any():
        raise ValueError("betas must be a strictly increasing 1-D grid of at least two nonnegative values")
    return grid


def posterior_from_q(
    q: jax.Array,
    terminal: jax.Array,
    probs: jax.Array,
    state_weights: jax.Array,
    *,
    names: Sequence[str],
    betas: Sequence[float] | jax.Array = DEFAULT_BETAS,
    threshold: float = DEFAULT_EXPLAIN_THRESHOLD,
    lapses: Sequence[float] | None = DEFAULT_LAPSES,
) -> GoalPosterior:
    """`goal_posterior` from precomputed `Q*` values (so several evidence weightings share one solve).

    Args:
        q: float32 `[G, L, S, A]`, each goal's `Q*` (`goal_q_values`).
        terminal: bool `[L, S]`.
        probs: float32 `[L, S, A]`.
        state_weights: float32 `[L, S]` evidence weights (terminal states are zeroed here).
        names: `G` goal names.
        betas: Rationality grid.
        threshold: Explanation threshold (nats per step).
        lapses: Lapse-rate grid (None or empty: lapse-free model only).
    """
    return posteriors_from_q(q, terminal, probs, jnp.asarray(state_weights)[None], names=names, betas=betas,
                             threshold=threshold, lapses=lapses)[0]


def posteriors_from_q(
    q: jax.Array,
    terminal: jax.Array,
    probs: jax.Array,
    weightings: jax.Array,
    *,
    names: Sequence[str],
    betas: Sequence[float] | jax.Array = DEFAULT_BETAS,
    threshold: float = DEFAULT_EXPLAIN_THRESHOLD,
    lapses: Sequence[float] | None = DEFAULT_LAPSES,
) -> list[GoalPosterior]:
    """The goal posterior under several evidence weightings of the same system at once.

    `mesascope.measures.shards` fits the whole level and each part of each context this way, in one
    compiled call. Only the states a weighting counts enter its computation: the evidence is compacted to
    the states with positive weight (a trained system's occupancy is zero on most states; 15% of the
    states of 256 cheese-corner deploy levels carry weight for a fast PPO agent; a shard part holds a
    share of those), padded to a few fixed sizes so compilations repeat. The sums are then taken over fewer terms, in another order, so results
    agree with the uncompacted sums to float32 rounding.

    Args:
        q: float32 `[G, L, S, A]`, each goal's `Q*` (`goal_q_values`).
        terminal: bool `[L, S]`.
        probs: float32 `[L, S, A]`.
        weightings: float32 `[W, L, S]`, one evidence weighting per posterior (terminal states are zeroed).
        names: `G` goal names.
        betas, threshold, lapses: As in `posterior_from_q`.

    Returns:
        `W` `GoalPosterior`s, in the order of `weightings`.
    """
    names = tuple(names)
    if len(names) != q.shape[0]:
        raise ValueError(f"got {len(names)} names for {q.shape[0]} goals")
    grid = _check_grid(betas)
    lapse_grid = None
    if lapses is not None and len(lapses) > 0:
        lapse_grid = np.asarray(lapses, np.float32)
        if lapse_grid.ndim != 1 or (lapse_grid < 0).any() or (lapse_grid >= 1).any():
            raise ValueError("lapses must be a 1-D grid of values in [0, 1)")
        # `boltzmann_fit` ignores lapses <= 0 (the lapse-free fit is always made): leaving them out of the
        # grid skips a column of likelihoods it would mask away (1 of the 9 `DEFAULT_LAPSES`).
        lapse_grid = jax.device_put(lapse_grid[lapse_grid > 0]) if (lapse_grid > 0).any() else None
    g, n_levels, n_states, n_actions = q.shape
    # Selected on the host: the weightings are read there anyway to find each one's states.
    w = np.where(np.asarray(terminal)[None], np.float32(0.0), np.asarray(weightings, np.float32))
    w = w.reshape(w.shape[0], -1)
    # Each weighting keeps only its own states (a shard part holds a share of them); weightings whose padded
    # sizes agree are fitted together, so a part is not padded to the size of the whole.
    supports = [np.flatnonzero(row > 0) for row in w]
    sizes = [_bucket(len(rows)) for rows in supports]
    q_all, probs_all = jnp.asarray(q, jnp.float32), jnp.asarray(probs, jnp.float32)
    per_weighting: list[Any] = [None] * w.shape[0]
    groups, pending = [], []
    for size in sorted(set(sizes)):
        group = [k for k in range(w.shape[0]) if sizes[k] == size]
        take = np.zeros((len(group), size), np.int32)
        w_c = np.zeros((len(group), size), np.float32)
        for i, k in enumerate(group):
            take[i, : len(supports[k])] = supports[k]
            w_c[i, : len(supports[k])] = w[k, supports[k]]
        groups.append(group)
        pending.append(_fits_compact(
            # `jax.device_put`, not `jnp.asarray`: the latter compiles a program per shape (jax 0.10).
            q_all, probs_all, jax.device_put(take), jax.device_put(w_c), jax.device_put(grid), lapse_grid))
    # Every group is dispatched before any is read back, so preparing (or tracing) one overlaps computing another.
    for group, fit in zip(groups, pending):
        fit = jax.tree_util.tree_map(np.asarray, fit)
        for i, k in enumerate(group):
            per_weighting[k] = jax.tree_util.tree_map(lambda x, i=i: x[i], fit)
    fits = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *per_weighting)
    uniform = -float(np.log(n_actions))
    out = []
    for k in range(w.shape[0]):
        n_steps = float(fits.n_steps[k][0])
        fit_quality = np.asarray(fits.fit_quality[k], np.float64)
        # Every goal's likelihood shares the factor A^-n_steps, so softmaxes of the gains over the uniform
        # policy equal those of the log-likelihoods, and keep their float32 precision.
        gain = fit_quality * n_steps
        out.append(GoalPosterior(
            names=names,
            beta=np.asarray(fits.beta[k]),
            lapse=np.asarray(fits.lapse[k]),
            loglik=fit_quality + uniform,
            uniform_loglik=uniform,
            fit_quality=fit_quality,
            total_loglik=gain + n_steps * uniform,
            posterior=np.exp(gain - _logsumexp(gain)),
            posterior_per_step=np.exp(fit_quality - _logsumexp(fit_quality)),
            explains=fit_quality >= threshold,
            threshold=float(threshold),
            n_steps=n_steps,
            best=names[int(np.argmax(gain))],
        ))
    return out


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))


def scenario_goal_posterior(scenario: Any, tab: TabularMDP, probs: jax.Array, **kwargs: Any) -> GoalPosterior:
    """`goal_posterior` over a scenario's `candidate_goals`, with its features and discount.

    Args:
        scenario: A `mesascope.scenarios.base.Scenario`.
        tab: Its tabular levels `[L, ...]`.
        probs: float32 `[L, S, A]`.
        **kwargs: Passed on to `goal_posterior` (`state_weights`, `betas`, `threshold`).
    """
    goals = scenario.candidate_goals
    weights = np.stack([goal.vector(scenario.feature_names) for goal in goals])
    return goal_posterior(
        tab, probs, weights, scenario.spec.gamma, names=tuple(goal.name for goal in goals),
        reach=[goal.reach for goal in goals], **kwargs,
    )
