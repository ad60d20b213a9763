"""Exact dynamic programming on tabular levels (SPEC.md section 2).

All functions take one level's arrays (`next_state` int32 `[S, A]`, `reward` float32 `[S, A]`) and are
pure and jittable; batch over levels with `jax.vmap`. Transitions are deterministic, so a Bellman
backup is a gather, not a matrix product. Iterations stop when the sup-norm change falls below `tol`
(bounded by `max_iters`); with the default tolerance the values are exact to float32 precision for
rewards of order one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Solution",
    "discounted_occupancy",
    "fixed_point",
    "optimal_action_mask",
    "policy_evaluation",
    "policy_evaluation_dense",
    "range_over_optimal",
    "stop_on_arrival",
    "transition_matrix",
    "uniform_over_optimal",
    "uniform_policy",
    "value_iteration",
    "worst_case_over_optimal",
]

DEFAULT_TOL = 1e-6
DEFAULT_MAX_ITERS = 20_000
DENSE_MAX_STATES = 128
"""Up to this many states, values are finished by dense linear solves (exact to float32 rounding) instead
of relying on the iteration's stopping rule, whose error bound grows like 1 / (1 - gamma)."""
SWEEPS_PER_STATE = 4
"""On small levels value iteration runs at most this many sweeps per state before policy iteration takes
over (enough for sparse rewards to settle on any level of the catalogue)."""


class Solution(NamedTuple):
    """Optimal values of one objective on one level.

    Attributes:
        v: float32 `[S]`, `V*(s)`.
        q: float32 `[S, A]`, `Q*(s, a)`.
    """

    v: jax.Array
    q: jax.Array


def fixed_point(backup, v0: jax.Array, tol: float, max_iters: int) -> jax.Array:
    """Iterate `backup` from `v0` until the sup-norm change is at most `tol` (or `max_iters` sweeps)."""

    def cond(carry):
        _, delta, i = carry
        return (delta > tol) & (i < max_iters)

    def body(carry):
        v, _, i = carry
        v_new = backup(v)
        return v_new, jnp.max(jnp.abs(v_new - v)), i + 1

    v, _, _ = jax.lax.while_loop(cond, body, (v0, jnp.asarray(jnp.inf, v0.dtype), 0))
    return v


def _scale(reward: jax.Array, gamma: float) -> jax.Array:
    # Convergence is judged relative to the largest attainable value, so one tolerance serves all scales.
    return jnp.maximum(jnp.max(jnp.abs(reward)) / (1.0 - gamma), 1e-12)


def value_iteration(
    next_state: jax.Array,
    reward: jax.Array,
    gamma: float,
    *,
    tol: float = DEFAULT_TOL,
    max_iters: int = DEFAULT_MAX_ITERS,
    allowed: jax.Array | None = None,
    minimize: bool = False,
) -> Solution:
    """Optimal values by value iteration (finished exactly by a linear solve on small levels).

    Args:
        next_state: int32 `[S, A]`.
        reward: float32 `[S, A]`.
        gamma: Discount in `[0, 1)`.
        tol: Stop when the relative sup-norm change is below this.
        max_iters: Hard bound on iterations.
        allowed: Optional bool `[S, A]`: restrict the optimisation to these actions (every state must
            allow at least one).
        minimize: Minimise instead of maximise (used for worst cases).

    Returns:
        `Solution` with `v` `[S]` and `q` `[S, A]`.
    """
    scale = _scale(reward, gamma)
    fill = jnp.inf if minimize else -jnp.inf
    pick = jnp.min if minimize else jnp.max

    def q_of(v: jax.Array) -> jax.Array:
        return reward + gamma * v[next_state]

    def backup(v: jax.Array) -> jax.Array:
        q = q_of(v)
        if allowed is not None:
            q = jnp.where(allowed, q, fill)
        return pick(q, axis=-1)

    s, a = reward.shape
    if s > DENSE_MAX_STATES:
        v = fixed_point(backup, jnp.zeros(s, reward.dtype), tol * scale, max_iters)
        return Solution(v=v, q=q_of(v))
    # Small levels: sweeps until the values settle or `SWEEPS_PER_STATE * S` sweeps have run, then policy
    # iteration from their greedy policy (each step evaluated exactly) until it no longer changes. Sparse
    # rewards (reach the cheese) settle within a few path lengths and need one solve; dense ones (a cost on
    # every step) would need ~log(1/tol) / (1 - gamma) sweeps to settle, where a few exact policy
    # improvements finish the job instead.
    v = fixed_point(backup, jnp.zeros(s, reward.dtype), tol * scale, min(max_iters, SWEEPS_PER_STATE * s))

    def greedy(v: jax.Array, current: jax.Array | None = None) -> jax.Array:
        q = q_of(v)
        if allowed is not None:
            q = jnp.where(allowed, q, fill)
        best = jnp.argmin(q, -1) if minimize else jnp.argmax(q, -1)
        if current is None:
            return best
        # Keep the current action where it is as good as the new greedy one: rounding noise must not make
        # two equally good actions trade places forever.
        same = jnp.take_along_axis(q, current[:, None], 1)[:, 0] == jnp.take_along_axis(q, best[:, None], 1)[:, 0]
        return jnp.where(same, current, best)

    def evaluate(policy: jax.Array) -> jax.Array:
        return policy_evaluation_dense(next_state, reward, jax.nn.one_hot(policy, a, dtype=reward.dtype), gamma)

    def improve(carry):
        v, policy, _, i = carry
        new = greedy(v, policy)
        changed = jnp.any(new != policy)
        return jnp.where(changed, evaluate(new), v), new, changed, i + 1

    policy = greedy(v)
    v, _, _, _ = jax.lax.while_loop(lambda c: c[2] & (c[3] < s + 1), improve, (evaluate(policy), policy, jnp.asarray(True), 0))
    return Solution(v=v, q=q_of(v))


def policy_evaluation(
    next_state: jax.Array,
    reward: jax.Array,
    policy: jax.Array,
    gamma: float,
    *,
    tol: float = DEFAULT_TOL,
    max_iters: int = DEFAULT_MAX_ITERS,
) -> jax.Array:
    """Exact value of a stochastic policy, `V^pi` float32 `[S]`.

    Levels with at most `DENSE_MAX_STATES` states are solved directly (`policy_evaluation_dense`);
    larger ones iterate the policy's Bellman operator to the relative tolerance `tol`.

    Args:
        next_state: int32 `[S, A]`.
        reward: float32 `[S, A]`.
        policy: float32 `[S, A]`, action probabilities per state (rows sum to one).
        gamma: Discount in `[0, 1)`.
    """
    if reward.shape[0] <= DENSE_MAX_STATES:
        return policy_evaluation_dense(next_state, reward, policy, gamma)
    r_pi = (policy * reward).sum(-1)
    scale = _scale(reward, gamma)

    def backup(v: jax.Array) -> jax.Array:
        return r_pi + gamma * (policy * v[next_state]).sum(-1)

    return fixed_point(backup, jnp.zeros_like(r_pi), tol * scale, max_iters)


def transition_matrix(next_state: jax.Array, policy: jax.Array) -> jax.Array:
    """Dense state-to-state matrix `P_pi` float `[S, S]` of a policy on a deterministic level."""
    s, _ = next_state.shape
    rows = jnp.broadcast_to(jnp.arange(s)[:, None], next_state.shape)
    return jnp.zeros((s, s), policy.dtype).at[rows, next_state].add(policy)


def policy_evaluation_dense(
    next_state: jax.Array, reward: jax.Array, policy: jax.Array, gamma: float
) -> jax.Array:
    """`V^pi` by solving `(I - gamma P_pi) V = r_pi` directly: a second implementation for checks and
    for small levels (cost `O(S^3)`)."""
    p = transition_matrix(next_state, policy)
    r_pi = (policy * reward).sum(-1)
    return jnp.linalg.solve(jnp.eye(p.shape[0], dtype=p.dtype) - gamma * p, r_pi)


def discounted_occupancy(
    next_state: jax.Array,
    policy: jax.Array,
    start: jax.Array,
    gamma: float,
    *,
    d0: jax.Array | None = None,
    tol: float = DEFAULT_TOL,
    max_iters: int = DEFAULT_MAX_ITERS,
) -> jax.Array:
    """Exact discounted state-action occupancy `mu(s, a) = sum_t gamma^t P(s_t = s, a_t = a)`: float32 `[S, A]`.

    Iterates `d <- e_start + gamma P_pi^T d` on the state occupancy `d` `[S]` (a `gamma`-contraction; one
    scatter-add per sweep, so it scales to large levels where the dense linear solve would not), then
    `mu(s, a) = d(s) pi(a | s)`. It sums to `1 / (1 - gamma)` (restored exactly after the iteration
    stops); terminal states are included (they are absorbing, so they collect the mass of finished
    episodes).

    Args:
        next_state: int32 `[S, A]`.
        policy: float32 `[S, A]`, rows summing to one.
        start: int32 scalar, the start state.
        gamma: Discount in `[0, 1)`.
        d0: Optional float32 `[S]` initial state occupancy (warm start).
        tol: Stop when the sup-norm change is below `tol / (1 - gamma)`.
        max_iters: Hard bound on iterations.
    """
    s = next_state.shape[0]
    e0 = jax.nn.one_hot(start, s, dtype=policy.dtype)
    flat_next = next_state.reshape(-1)

    def backup(d: jax.Array) -> jax.Array:
        flow = (d[:, None] * policy).reshape(-1)
        return e0 + gamma * jnp.zeros((s,), policy.dtype).at[flat_next].add(flow)

    init = e0 if d0 is None else d0.astype(policy.dtype)
    d = fixed_point(backup, init, tol / (1.0 - gamma), max_iters)
    # The total mass is known exactly; restoring it removes the truncation error's systematic part, so a
    # constant feature has exactly the same expectation under every policy (MCE IRL relies on that).
    d = d * (1.0 / (1.0 - gamma)) / jnp.sum(d)
    return d[:, None] * policy


def uniform_policy(next_state: jax.Array) -> jax.Array:
    """The uniform-random policy float32 `[S, A]`."""
    return jnp.full(next_state.shape, 1.0 / next_state.shape[-1], jnp.float32)


def stop_on_arrival(next_state: jax.Array, reward: jax.Array, terminal: jax.Array, reach: jax.Array | bool = True) -> jax.Array:
    """The dynamics a *reach* objective is valued under: its first paying transition ends the episode.

    "Reach the corner" is worth `gamma^t` for arriving at step `t`, whatever happens afterwards. On the
    level's own dynamics that is not a Markov reward when the corner does not end the episode; sending
    every transition with a positive reward to the absorbing terminal state makes it one, with exactly
    the same value for every policy (values count the rewards up to first arrival, and the first
    arrival's own reward). Where `reach` is False the level's dynamics are returned unchanged.

    Args:
        next_state: int32 `[S, A]`.
        reward: float32 `[S, A]`, the objective's reward.
        terminal: bool `[S]`; the first terminal state is used as the absorbing state (every gridworld
            level has one, index `S - 1`).
        reach: bool scalar (traced or not).

    Returns:
        int32 `[S, A]`.
    """
    sink = jnp.argmax(terminal).astype(next_state.dtype)
    return jnp.where(jnp.logical_and(reach, reward > 0), sink, next_state)


def optimal_action_mask(q: jax.Array, *, atol: float = 1e-4, rtol: float = 1e-4) -> jax.Array:
    """Actions within tolerance of `max_a Q*(s, a)`: bool `[S, A]` (SPEC.md section 2).

    The tolerance is `atol + rtol * |max_a Q*(s, a)|`, so near-ties from float32 rounding count as ties.
    """
    best = q.max(-1, keepdims=True)
    return q >= best - (atol + rtol * jnp.abs(best))


def uniform_over_optimal(q: jax.Array) -> jax.Array:
    """The policy that picks uniformly among `optimal_action_mask(q)`: `[..., S, A]` in `q`'s dtype.

    Ties are split evenly, so the policy does not depend on how actions are numbered (the pursuer of a
    goal, SPEC.md section 2).
    """
    mask = optimal_action_mask(q).astype(q.dtype)
    return mask / mask.sum(-1, keepdims=True)


def worst_case_over_optimal(
    next_state: jax.Array,
    reward_a: jax.Array,
    reward_b: jax.Array,
    gamma: float,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    best_case: bool = False,
) -> Solution:
    """Worst value of objective B over all policies optimal for objective A (SPEC.md section 2).

    "Every policy optimal for A scores at least x on B" is decided exactly: restrict every state to its
    A-optimal actions and minimise B's value over that restricted MDP (a deterministic stationary
    minimiser exists, and it is one of the A-optimal policies).

    Args:
        next_state: int32 `[S, A]`.
        reward_a: float32 `[S, A]`, the objective that defines optimality.
        reward_b: float32 `[S, A]`, the objective whose worst case is sought.
        gamma: Discount.
        best_case: Maximise B instead (the most favourable A-optimal policy).

    Returns:
        `Solution` of B restricted to A-optimal actions; `argmin`/`argmax` of `q` over the allowed
        actions gives the extreme policy itself (use `optimal_action_mask(q_a)` as the mask).
    """
    sol_a = value_iteration(next_state, reward_a, gamma)
    allowed = optimal_action_mask(sol_a.q, atol=atol, rtol=rtol)
    sol_b = value_iteration(next_state, reward_b, gamma, allowed=allowed, minimize=not best_case)
    fill = -jnp.inf if best_case else jnp.inf
    return Solution(v=sol_b.v, q=jnp.where(allowed, sol_b.q, fill))


@jax.jit
def range_over_optimal(
    next_state: jax.Array, reward_a: jax.Array, reward_b: jax.Array, start: jax.Array, gamma: float
) -> tuple[jax.Array, jax.Array]:
    """Least and most of objective B at the start state over all policies optimal for A, per level.

    The batched form of `worst_case_over_optimal` with both ends at once (A is solved once per level).
    Scenarios use it for "every base-optimal policy does X" (B = an indicator reward for X).

    Args:
        next_state: int32 `[L, S, A]`.
        reward_a: float32 `[L, S, A]`, the objective that defines optimality.
        reward_b: float32 `[L, S, A]`, the objective whose range is sought.
        start: int32 `[L]`, each level's start state.
        gamma: Discount.

    Returns:
        `(least, most)`, float32 `[L]` each: `V_B` at the start state of the most and least favourable
        A-optimal policy.
    """

    def one(ns, ra, rb, s0):
        allowed = optimal_action_mask(value_iteration(ns, ra, gamma).q)
        lo = value_iteration(ns, rb, gamma, allowed=allowed, minimize=True).v[s0]
        hi = value_iteration(ns, rb, gamma, allowed=allowed).v[s0]
        return lo, hi

    return jax.vmap(one)(next_state, reward_a, reward_b, start)
