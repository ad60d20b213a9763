"""Maximum-causal-entropy IRL: the reward in the span of the features that best explains a system (SPEC.md section 4).

Maximum-causal-entropy IRL (Ziebart et al. 2008, "Maximum Entropy Inverse Reinforcement Learning";
Ziebart, Bagnell and Dey 2010, "Modeling Interaction via the Principle of Maximum Causal Entropy") with
known deterministic dynamics (`mce_irl`): find weights `w` whose soft-optimal policy reproduces the
system's discounted feature expectations. The problem is concave in `w`, and its gradient is computed
exactly from occupancy measures (`mesascope.solve.dp.discounted_occupancy`), so there is no sampling
noise. `mce_irl_over_discounts` fits the discount too, by likelihood. Which of a scenario's *named*
candidate goals explains the behaviour is `mesascope.measures.goal_posterior`; the fitted soft policies
here are scored on the same evidence (`system_state_weights`, `expected_log_likelihood`).

Conventions:

- Terminal states are absorbing and every feature is zero out of them (`mesascope.levels.grid.step`).
  Their soft value is fixed at 0 by default (no entropy is collected after the episode ends; otherwise
  the `log A / (1 - gamma)` entropy of an absorbing state would act as a large bonus for terminating),
  and they carry no evidence.
- "Per step" means per discounted decision the system actually takes (its own discounted occupancy of
  live states, from the start state). Log-likelihoods are in nats.

Single-level primitives (`soft_value_iteration`, `feature_expectations`) follow `mesascope.solve.dp`:
one level's arrays, pure and jittable, batch with `jax.vmap`. The fits take a `[L]` batch of
`TabularMDP`s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.goal_posterior import expected_log_likelihood, system_state_weights
from mesascope.programs import cached_jit
from mesascope.solve.dp import (
    DEFAULT_MAX_ITERS,
    DEFAULT_TOL,
    DENSE_MAX_STATES,
    discounted_occupancy,
    fixed_point,
    transition_matrix,
)

__all__ = [
    "DiscountFit",
    "IRLResult",
    "SoftSolution",
    "feature_expectations",
    "mce_irl",
    "mce_irl_many",
    "mce_irl_over_discounts",
    "soft_value_iteration",
]


# ------------------------------------------------------------------------------------ soft optimality


class SoftSolution(NamedTuple):
    """Soft-optimal (maximum-causal-entropy) values of one reward on one level.

    Attributes:
        v: float32 `[S]`, `V_soft(s) = (1 / beta) log sum_a exp(beta Q_soft(s, a))` (0 at terminal states).
        q: float32 `[S, A]`, `Q_soft(s, a) = r(s, a) + gamma V_soft(s')`.
        policy: float32 `[S, A]`, `softmax(beta * Q_soft(s, .))` (uniform at terminal states).
    """

    v: jax.Array
    q: jax.Array
    policy: jax.Array


def soft_value_iteration(
    next_state: jax.Array,
    reward: jax.Array,
    gamma: float,
    beta: float = 1.0,
    *,
    terminal: jax.Array | None = None,
    v0: jax.Array | None = None,
    tol: float = DEFAULT_TOL,
    max_iters: int = DEFAULT_MAX_ITERS,
) -> SoftSolution:
    """Soft value iteration: the maximum-causal-entropy policy of a reward (Ziebart et al. 2010; SPEC.md §4).

    Iterates `V(s) <- (1 / beta) logsumexp_a beta (r(s, a) + gamma V(s'))`, a `gamma`-contraction, to its
    fixed point. The policy `softmax(beta * Q_soft)` maximises expected return plus `1 / beta` times its
    discounted causal entropy. This is the model `mce_irl` fits (with `beta = 1`, the weights' scale
    playing the rationality's part); `mesascope.measures.goal_posterior` uses the Boltzmann policy over
    the *ordinary* optimal `Q*` instead (see `boltzmann_policy` there for why).

    Args:
        next_state: int32 `[S, A]`, deterministic successors.
        reward: float32 `[S, A]`.
        gamma: Discount in `[0, 1)`.
        beta: Inverse temperature, `> 0`.
        terminal: Optional bool `[S]`: absorbing states whose soft value is fixed at 0 (no entropy is
            collected once the episode has ended). Without it an absorbing state is worth
            `log(A) / (beta (1 - gamma))` plus its rewards.
        v0: Optional float32 `[S]` initial values (warm start; the fixed point does not depend on it).
        tol: Stop when the sup-norm change is below `tol` times the value scale
            `(max |r| + log(A) / beta) / (1 - gamma)`.
        max_iters: Hard bound on iterations.

    Returns:
        `SoftSolution` with `v` `[S]`, `q` `[S, A]`, `policy` `[S, A]`.
    """
    s, a = next_state.shape
    live = jnp.ones((s,), bool) if terminal is None else ~terminal
    scale = jnp.maximum((jnp.max(jnp.abs(reward)) + jnp.log(a) / beta) / (1.0 - gamma), 1e-12)

    def q_of(v: jax.Array) -> jax.Array:
        return reward + gamma * v[next_state]

    def backup(v: jax.Array) -> jax.Array:
        soft_max = jax.nn.logsumexp(beta * q_of(v), axis=-1) / beta
        return jnp.where(live, soft_max, 0.0)

    init = jnp.zeros((s,), reward.dtype) if v0 is None else v0.astype(reward.dtype)
    v = fixed_point(backup, init, tol * scale, max_iters)
    q = q_of(v)
    return SoftSolution(v=v, q=q, policy=jax.nn.softmax(beta * q, axis=-1))


# -------------------------------------------------------------------------------- feature expectations


def feature_expectations(features: jax.Array, occupancy: jax.Array) -> jax.Array:
    """Discounted feature expectations `sum_{s, a} mu(s, a) phi(s, a)`: float32 `[..., K]` (SPEC.md §4).

    Args:
        features: float32 `[..., S, A, K]`.
        occupancy: float32 `[..., S, A]`, e.g. from `discounted_occupancy`.
    """
    return jnp.einsum("...sa,...sak->...k", occupancy, features)


# ------------------------------------------------------------------------------------------ MCE IRL


class IRLResult(NamedTuple):
    """Maximum-causal-entropy IRL fit over the linear span of the features (SPEC.md section 4).

    Attributes:
        weights: float32 `[K]`, the fitted reward weights (soft-optimal with `beta = 1`).
        feature_gap: float32 `[K]`, demo minus model discounted feature expectations, averaged over
            levels, at the fitted weights (zero at an exact, unregularised optimum).
        gap_norm: float32 scalar, `|feature_gap| / n_steps`: the gap per discounted step.
        loglik: float32 scalar, expected log-likelihood per step of the system's actions under the fitted
            soft policy (nats), weighted by the system's own live discounted occupancy.
        uniform_loglik: float32 scalar, `-log A`.
        demo_features: float32 `[K]`, the system's discounted feature expectations (mean over levels).
        model_features: float32 `[K]`, the fitted soft policy's (mean over levels).
        gap_trace: float32 `[steps]`, `gap_norm` before each optimiser step (for convergence checks).
    """

    weights: jax.Array
    feature_gap: jax.Array
    gap_norm: jax.Array
    loglik: jax.Array
    uniform_loglik: jax.Array
    demo_features: jax.Array
    model_features: jax.Array
    gap_trace: jax.Array


def _dense_occupancy(next_state, policy, start, gamma):
    # d = (I - gamma P^T)^-1 e_start, exactly; mu(s, a) = d(s) pi(a | s) (as `discounted_occupancy`).
    s = next_state.shape[0]
    p = transition_matrix(next_state, policy)
    d = jnp.linalg.solve(jnp.eye(s, dtype=policy.dtype) - gamma * p.T, jax.nn.one_hot(start, s, dtype=policy.dtype))
    d = d * (1.0 / (1.0 - gamma)) / jnp.sum(d)
    return d[:, None] * policy


def _soft_policy_iteration(next_state, reward, terminal, gamma, v0, tol=DEFAULT_TOL, max_iters=64):
    """Soft value iteration's fixed point (`soft_value_iteration`, `beta = 1`) by soft policy iteration.

    Each step evaluates the softmax policy of the current soft `Q` exactly, entropy bonus included
    (`V = sum_a pi (r - log pi) + gamma P_pi V`, terminal states pinned at 0), which is Newton's method on
    the soft Bellman equation: a few steps from a warm start reach float32 precision.
    """
    s, a = next_state.shape
    live = ~terminal
    eye = jnp.eye(s, dtype=reward.dtype)
    scale = jnp.maximum((jnp.max(jnp.abs(reward)) + jnp.log(a)) / (1.0 - gamma), 1e-12)

    def backup(v):
        return jnp.where(live, jax.nn.logsumexp(reward + gamma * v[next_state], axis=-1), 0.0)

    def evaluate(v):
        q = reward + gamma * v[next_state]
        pi = jax.nn.softmax(q, axis=-1)
        log_pi = jax.nn.log_softmax(q, axis=-1)
        rhs = jnp.where(live, jnp.sum(pi * (reward - log_pi), -1), 0.0)
        m = jnp.where(live[:, None], eye - gamma * transition_matrix(next_state, pi), eye)
        return jnp.linalg.solve(m, rhs)

    # Stop on the Bellman residual (one cheap sweep), the criterion soft value iteration stops on, rather
    # than on the change between two solves: from a warm start one or two solves usually suffice.
    def cond(carry):
        _, residual, i = carry
        return (residual > tol * scale) & (i < max_iters)

    def body(carry):
        v, _, i = carry
        v = evaluate(v)
        return v, jnp.max(jnp.abs(backup(v) - v)), i + 1

    v0 = v0.astype(reward.dtype)
    v, _, _ = jax.lax.while_loop(cond, body, (v0, jnp.max(jnp.abs(backup(v0) - v0)), 0))
    q = reward + gamma * v[next_state]
    return SoftSolution(v=v, q=q, policy=jax.nn.softmax(q, axis=-1))


def _occupancies(next_state, policy, start, gamma, d0):
    # Small levels: exact linear algebra (one solve) instead of hundreds of sweeps at gamma = 0.99; large
    # levels keep the sweeps, whose cost grows with S where a solve's grows with S^3.
    if next_state.shape[-2] <= DENSE_MAX_STATES:
        return jax.vmap(lambda ns, pi, s0: _dense_occupancy(ns, pi, s0, gamma))(next_state, policy, start)
    one = lambda ns, pi, s0, d: discounted_occupancy(ns, pi, s0, gamma, d0=d)  # noqa: E731
    return jax.vmap(one)(next_state, policy, start, d0)


def _soft_solutions(next_state, reward, terminal, gamma, v0):
    if next_state.shape[-2] <= DENSE_MAX_STATES:
        return jax.vmap(lambda ns, r, t, v: _soft_policy_iteration(ns, r, t, gamma, v))(next_state, reward, terminal, v0)
    return jax.vmap(lambda ns, r, t, v: soft_value_iteration(ns, r, gamma, 1.0, terminal=t, v0=v))(
        next_state, reward, terminal, v0
    )


def _live_occupancy(next_state, start, terminal, policy, gamma, d0):
    mu = _occupancies(next_state, policy, start, gamma, d0)
    return mu, jnp.where(terminal[..., None], 0.0, mu)


def _mce_impl(next_state, features, start, terminal, absorbing, probs, w0, trainable, gamma, l2, lr, steps):
    n_levels, s, _ = probs.shape
    zeros_s = jnp.zeros((n_levels, s), features.dtype)
    starts = jax.nn.one_hot(start, s, dtype=features.dtype)  # [L, S]
    _, demo_mu = _live_occupancy(next_state, start, terminal, probs, gamma, starts)
    demo_f = feature_expectations(features, demo_mu).mean(0)  # [K]
    # Normalising by the mean number of discounted live steps makes the objective a per-step
    # log-likelihood, so `l2` means the same thing for any gamma and episode length.
    n_steps = jnp.maximum(demo_mu.sum((-2, -1)).mean(), 1e-12)

    optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))

    # Where terminal states are absorbing like any other, the soft solution does not pin their value.
    soft_terminal = jnp.where(absorbing, jnp.zeros_like(terminal), terminal)

    def model_features(w, v_warm, d_warm):
        soft = _soft_solutions(next_state, features @ w, soft_terminal, gamma, v_warm)
        mu, live_mu = _live_occupancy(next_state, start, terminal, soft.policy, gamma, d_warm)
        return feature_expectations(features, live_mu).mean(0), soft, mu.sum(-1)

    def step(carry, _):
        w, opt_state, v_warm, d_warm = carry
        model_f, soft, d = model_features(w, v_warm, d_warm)
        # Gradient of the concave objective  <w, F_demo> - V_w(s0)  (per step) - l2/2 |w|^2.
        ascent = ((demo_f - model_f) / n_steps - l2 * w) * trainable
        updates, opt_state = optimizer.update(-ascent, opt_state, w)
        w = optax.apply_updates(w, updates)
        gap = jnp.linalg.norm(demo_f - model_f) / n_steps
        return (w, opt_state, soft.v, d), gap

    carry0 = (w0, optimizer.init(w0), zeros_s, starts)
    (w, _, v_warm, d_warm), trace = jax.lax.scan(step, carry0, None, length=steps)
    model_f, soft, _ = model_features(w, v_warm, d_warm)
    weights = demo_mu.sum(-1)  # the system's live discounted occupancy [L, S]
    ll = expected_log_likelihood(probs, soft.policy, weights).sum() / jnp.maximum(weights.sum(), 1e-12)
    gap = demo_f - model_f
    return IRLResult(
        weights=w,
        feature_gap=gap,
        gap_norm=jnp.linalg.norm(gap) / n_steps,
        loglik=ll,
        uniform_loglik=-jnp.log(jnp.asarray(probs.shape[-1], features.dtype)),
        demo_features=demo_f,
        model_features=model_f,
        gap_trace=trace,
    )


_mce = cached_jit(_mce_impl, static_argnames=("steps",))


@functools.partial(jax.jit, static_argnames=("steps",))
def _mce_many(next_state, features, start, terminal, absorbing, probs, w0, trainable, gamma, l2, lr, steps):
    # One fit per leading index, all in one program: each fit's loops are short on small levels, so running
    # them side by side costs little more than one (the per-iteration overhead dominates on CPU).
    return jax.vmap(lambda ns, ft, s0, term, pr: _mce_impl(ns, ft, s0, term, absorbing, pr, w0, trainable, gamma, l2, lr, steps))(
        next_state, features, start, terminal, probs)


def mce_irl(
    tab: TabularMDP,
    probs: jax.Array,
    *,
    gamma: float,
    l2: float = 1e-3,
    steps: int = 1000,
    lr: float = 0.1,
    init: jax.Array | None = None,
    trainable: Sequence[bool] | jax.Array | None = None,
    terminal_value: str = "zero",
) -> IRLResult:
    """Maximum-causal-entropy IRL with known deterministic dynamics (Ziebart et al. 2008/2010; SPEC.md §4).

    Finds weights `w` `[K]`, shared by all `L` levels, whose soft-optimal policy (`soft_value_iteration`
    with `beta = 1` on `w . phi`, terminal values 0) maximises the expected log-likelihood of the system's
    actions, weighted by the system's discounted occupancy from each start state. Because
    `log pi_w(a | s) = Q_w(s, a) - V_w(s)` telescopes along trajectories, that objective equals
    `<w, F_demo> - V_w(s0)`, concave in `w`, with gradient `F_demo - F_model(w)`: the difference of the
    system's and the model's discounted feature expectations. Both come from exact occupancy measures
    (`discounted_occupancy`), so there is no sampling noise; optax Adam follows the gradient, each step
    warm-starting soft value iteration and the occupancy from the previous step's solution.

    The objective is divided by the demo's mean number of discounted live steps (a per-step
    log-likelihood) and regularised by `(l2 / 2) |w|^2`: directions of `w` the data cannot see get zero
    gradient and are held at 0 (a minimum-norm solution), and the weights of a deterministic system, whose
    likelihood keeps growing as `|w| -> infinity`, stay bounded. Adam's step size decays (cosine, to 1% of
    `lr`) so the last steps settle instead of oscillating.

    Constant features (the gridworlds' `step`, 1 on every live transition) need care:

    - On levels that never terminate, a constant only shifts every reward, the soft policy does not
      change, the gradient is exactly 0 and the weight stays at 0.
    - Where episodes end, a step weight `c` equals, up to potential shaping (`Phi = -c / (1 - gamma)` on
      live states, 0 on terminal ones), a reward of `-c gamma / (1 - gamma)` for entering a terminal state.
      The soft policy is shaping-invariant, so the step weight is a statement about terminal behaviour,
      made relative to the convention that terminal states are worth 0. When every terminal transition
      also fires another feature (in cheese mazes, entering the cheese ends the episode), that feature and
      `step` explain the same behaviour, and `l2` picks the minimum-norm mix, which favours `step` (it
      needs a weight `(1 - gamma) / gamma` times smaller). Compare fitted rewards with a shaping-invariant
      distance (EPIC) rather than reading weights, or freeze `step` with `trainable`.

    Args:
        tab: Tabular levels, batched `[L, ...]`.
        probs: float32 `[L, S, A]`, the system's action probabilities on every state.
        gamma: Discount in `[0, 1)`.
        l2: Weight-decay strength (per-step log-likelihood units per squared weight).
        steps: Adam steps (static: one compilation per value).
        lr: Adam learning rate.
        init: Optional float32 `[K]` starting weights (default zeros).
        trainable: Optional bool `[K]`: only these weights are fitted; the others stay at `init` (e.g.
            freeze a `step` feature to force an explanation in terms of the other features).
        terminal_value: "zero" (default): terminal states are worth 0 to the model (no entropy after
            the episode ends). "absorbing": they are ordinary absorbing states with zero reward, worth
            the entropy `log(A) / (1 - gamma)` like any other state: the convention of a planner that
            does not know the episode ends there (`mesascope.systems.mesa`). The two conventions differ
            by a terminal bonus, which is exactly confounded with any feature that fires only on
            entering a terminal state (the `step` confound above), so the model must use the
            system's convention for such a feature's weight to mean the same thing.

    Returns:
        `IRLResult`.
    """
    features = jnp.asarray(tab.features, jnp.float32)
    k = features.shape[-1]
    # Host defaults, copied to the device: `jnp.zeros` and `jnp.ones` would each compile a program.
    w0 = jax.device_put(np.zeros(k, np.float32)) if init is None else jnp.asarray(init, jnp.float32)
    mask = jax.device_put(np.ones(k, np.float32)) if trainable is None else jnp.asarray(trainable, bool).astype(jnp.float32)
    if w0.shape != (k,) or mask.shape != (k,):
        raise ValueError(f"init and trainable must have shape [K] = [{k}], got {w0.shape} and {mask.shape}")
    if terminal_value not in ("zero", "absorbing"):
        raise ValueError(f"terminal_value must be 'zero' or 'absorbing'; got {terminal_value!r}")
    return _mce(
        tab.next_state,
        features,
        tab.start,
        tab.terminal,
        terminal_value == "absorbing",
        jnp.asarray(probs, jnp.float32),
        w0,
        mask,
        gamma,
        l2,
        lr,
        steps,
    )


def mce_irl_many(
    tab: TabularMDP,
    probs: jax.Array,
    *,
    gamma: float,
    l2: float = 1e-3,
    steps: int = 1000,
    lr: float = 0.1,
) -> IRLResult:
    """`mce_irl` for several independent fits at once (systems, splits), in one compiled program.

    Args:
        tab: Tabular levels batched `[B, L, ...]`: fit `b` uses `tab[b]` (the same levels may repeat).
        probs: float32 `[B, L, S, A]`, the action probabilities behind fit `b`.
        gamma, l2, steps, lr: As in `mce_irl` (shared by every fit; zero initial weights, all trainable,
            terminal states worth 0).

    Returns:
        `IRLResult` whose every field has a leading `[B]` axis; fit `b` equals `mce_irl(tab[b], probs[b])`.
    """
    features = jnp.asarray(tab.features, jnp.float32)
    k = features.shape[-1]
    return _mce_many(tab.next_state, features, tab.start, tab.terminal, False, jnp.asarray(probs, jnp.float32),
                     jnp.zeros(k, jnp.float32), jnp.ones(k, jnp.float32), gamma, l2, lr, steps)


class DiscountFit(NamedTuple):
    """MCE IRL with the discount chosen by likelihood (`mce_irl_over_discounts`).

    Attributes:
        result: The `IRLResult` at the chosen discount.
        gamma: The chosen discount.
        loglik: float `[D]`, expected log-likelihood per step of the system's actions under each
            discount's fitted soft policy, all weighted by the same state weights (so comparable).
        gammas: The discounts tried, `[D]`.
    """

    result: IRLResult
    gamma: float
    loglik: np.ndarray
    gammas: tuple[float, ...]


@jax.jit
def _soft_policy_loglik(next_state, features, terminal, absorbing, probs, w, gamma, weights):
    soft_terminal = jnp.where(absorbing, jnp.zeros_like(terminal), terminal)
    soft = _soft_solutions(next_state, features @ w, soft_terminal, gamma, jnp.zeros(terminal.shape, features.dtype))
    return expected_log_likelihood(probs, soft.policy, weights).sum() / jnp.maximum(weights.sum(), 1e-12)


def mce_irl_over_discounts(
    tab: TabularMDP,
    probs: jax.Array,
    *,
    gammas: Sequence[float],
    eval_gamma: float,
    **kwargs: Any,
) -> DiscountFit:
    """MCE IRL at each of several discounts; keep the one whose soft policy best predicts the system.

    A behavioural model is a reward *and* a discount: a system that plans with a shorter horizon than
    the environment's (an explicit mesa-optimizer with its own planning discount) is misdescribed by any
    reward at the environment's discount, and the misfit shows up as spurious reward structure. The
    discount is therefore fitted like the weights, by maximum expected log-likelihood, with every
    candidate scored on the same evidence (the system's own live occupancy at `eval_gamma`), which makes
    the likelihoods comparable (SPEC.md section 4).

    Args:
        tab: Tabular levels `[L, ...]` (their `features` span the rewards considered).
        probs: float32 `[L, S, A]`.
        gammas: Candidate discounts in `[0, 1)`.
        eval_gamma: Discount of the evidence weights (the environment's).
        **kwargs: Passed on to `mce_irl` (`l2`, `steps`, `lr`, ...).
    """
    gammas = tuple(float(g) for g in gammas)
    if not gammas or any(not 0.0 <= g < 1.0 for g in gammas):
        raise ValueError(f"gammas must be a non-empty list of discounts in [0, 1); got {gammas}")
    probs = jnp.asarray(probs, jnp.float32)
    features = jnp.asarray(tab.features, jnp.float32)
    weights = system_state_weights(tab, probs, eval_gamma)
    results, lls = [], []
    for g in gammas:
        res = mce_irl(tab, probs, gamma=g, **kwargs)
        results.append(res)
        absorbing = kwargs.get("terminal_value", "zero") == "absorbing"
        lls.append(
            float(_soft_policy_loglik(tab.next_state, features, tab.terminal, absorbing, probs, res.weights, g, weights))
        )
    best = int(np.argmax(lls))
    return DiscountFit(result=results[best], gamma=gammas[best], loglik=np.asarray(lls), gammas=gammas)
