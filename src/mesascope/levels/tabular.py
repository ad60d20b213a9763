"""The tabular view of a level: every state enumerated, so values are exact (SPEC.md sections 1-2).

State index layout (static for a `GridSpec`)::

    index = ((row * W + col) * 2**n_tracked + consumed_bits) * (max_inventory + 1) + inventory

and the last index `S - 1` is the absorbing terminal state. Indices for wall cells or impossible
combinations exist but are never reached from the start state; they cost a little memory and nothing
else. The tabular arrays are produced by running the simulator's own `step` on every (state, action),
so the solved MDP and the simulated one cannot drift apart.

Transition form (SPEC.md section 3). An objective is a reward on transitions `R(s, a, s')`. Because the
dynamics are deterministic, the realised table `features[s, a]` is enough to score policies, but not to
compare objectives: EPIC's canonicalisation evaluates rewards on transitions the level never makes, and
potential shaping `gamma Phi(s') - Phi(s)` can only be removed if the `s'` part is kept as a function of
`s'`. So each feature is split into a part that depends on the next state alone, `next_features[s']`
(where the agent is after the transition: region indicators, the `s'` half of a region delta), and the
rest, `features[s, a] - next_features[next_state[s, a]]` (what the move did: entering an object, a step
taken, the `s` half of a delta). The two add up to `features` on every realised transition. The absorbing
terminal state has `next_features = 0`, so whatever a transition into it pays (the region of the square
that ended the episode) stays in the `(s, a)` part.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mesascope.levels.grid import GridSpec, Level, State, observe, reset, step

__all__ = [
    "TabularMDP",
    "TransitionReward",
    "decode",
    "encode",
    "grid_next_features",
    "observe_all",
    "tabularize",
    "transition_reward",
]


class TabularMDP(NamedTuple):
    """A level as a finite deterministic MDP (leading `[L]` axis when batched).

    Attributes:
        next_state: int32 `[S, A]`, successor index of each (state, action).
        features: float32 `[S, A, K]`, `phi(s, a, s')` of that transition.
        start: int32 scalar, index of the start state.
        terminal: bool `[S]`, absorbing states.
        next_features: float32 `[S, K]`, the part of each feature that is a function of the next state
            alone (see the module docstring); `None` when every feature is a function of `(s, a)` (e.g.
            hand-built levels), i.e. `R(s, a, s') = features[s, a] . w` for every `s'`.
    """

    next_state: jax.Array
    features: jax.Array
    start: jax.Array
    terminal: jax.Array
    next_features: jax.Array | None = None


class TransitionReward(NamedTuple):
    """An objective as a reward on transitions, `R(s, a, s') = sa[s, a] + next[s']` (SPEC.md section 3).

    Attributes:
        sa: float32 `[..., S, A]`, the part that depends on the state and the action.
        next: float32 `[..., S]`, the part that depends on the next state alone.
    """

    sa: jax.Array
    next: jax.Array

    def realised(self, next_state: jax.Array) -> jax.Array:
        """The reward of each realised transition, `sa[s, a] + next[next_state[s, a]]`: `[..., S, A]`."""
        shape = next_state.shape
        flat = next_state.reshape(shape[:-2] + (-1,))
        return self.sa + jnp.take_along_axis(self.next, flat, -1).reshape(shape)


def transition_reward(tab: TabularMDP, weights: jax.Array) -> TransitionReward:
    """The transition form of the linear objective `weights . phi` on (batched) levels.

    Args:
        tab: `TabularMDP`, batched `[...]` or not.
        weights: float32 `[K]`.

    Returns:
        `TransitionReward` with `sa` `[..., S, A]` and `next` `[..., S]`; `sa + next[s']` equals
        `features @ weights` on every realised transition.
    """
    weights = jnp.asarray(weights, jnp.float32)
    realised = jnp.asarray(tab.features, jnp.float32) @ weights
    if tab.next_features is None:
        return TransitionReward(realised, jnp.zeros(realised.shape[:-1], realised.dtype))
    nxt = jnp.asarray(tab.next_features, jnp.float32) @ weights
    shape = tab.next_state.shape
    flat = tab.next_state.reshape(shape[:-2] + (-1,))
    return TransitionReward(realised - jnp.take_along_axis(nxt, flat, -1).reshape(shape), nxt)


def encode(spec: GridSpec, state: State) -> jax.Array:
    """Index of a state in the tabular view (int32 scalar)."""
    bits = state.consumed[: spec.n_tracked].astype(jnp.int32)
    mask = (bits * (2 ** jnp.arange(spec.n_tracked, dtype=jnp.int32))).sum()
    cell = state.pos[0] * spec.width + state.pos[1]
    idx = (cell * (2**spec.n_tracked) + mask) * (spec.max_inventory + 1) + state.inventory
    return jnp.where(state.done, spec.n_states - 1, idx).astype(jnp.int32)


def decode(spec: GridSpec, index: jax.Array) -> State:
    """The state at a tabular index (the inverse of `encode`)."""
    inv = index % (spec.max_inventory + 1)
    rest = index // (spec.max_inventory + 1)
    mask = rest % (2**spec.n_tracked)
    cell = rest // (2**spec.n_tracked)
    tracked = (mask >> jnp.arange(spec.n_tracked, dtype=jnp.int32)) & 1
    consumed = jnp.zeros((spec.n_objects,), bool).at[: spec.n_tracked].set(tracked.astype(bool))
    done = index == spec.n_states - 1
    pos = jnp.stack([cell // spec.width, cell % spec.width]).astype(jnp.int32)
    pos = jnp.where(done, jnp.zeros_like(pos), pos)
    return State(pos=pos, consumed=consumed, inventory=inv.astype(jnp.int32), done=done)


def grid_next_features(spec: GridSpec, level: Level) -> jax.Array:
    """The next-state part of the level's features on every state: float32 `[S, K]` (module docstring).

    Region features (where the agent is after the transition) and the `s'` half of region deltas are
    functions of the next state; object, `step` and monster features describe the move itself.
    """
    n_kinds = len(spec.kinds) + 1  # object kinds and `step`

    def one(index: jax.Array) -> jax.Array:
        state = decode(spec, index)
        here = level.regions[:, state.pos[0], state.pos[1]].astype(jnp.float32)
        parts = [jnp.zeros((n_kinds,), jnp.float32), here] + ([here] if spec.region_deltas else [])
        return jnp.concatenate(parts) * ~state.done

    return jax.vmap(one)(jnp.arange(spec.n_states, dtype=jnp.int32))


def tabularize(spec: GridSpec, level: Level) -> TabularMDP:
    """Enumerate one level into a `TabularMDP` (vmap over a `[L]` batch of levels)."""
    states = jax.vmap(lambda i: decode(spec, i))(jnp.arange(spec.n_states, dtype=jnp.int32))

    def row(state: State) -> tuple[jax.Array, jax.Array]:
        def one(a: jax.Array) -> tuple[jax.Array, jax.Array]:
            nxt, phi = step(spec, level, state, a)
            return encode(spec, nxt), phi

        return jax.vmap(one)(jnp.arange(spec.n_actions))

    next_state, features = jax.vmap(row)(states)
    return TabularMDP(
        next_state=next_state,
        features=features,
        start=encode(spec, reset(level)),
        terminal=states.done,
        next_features=grid_next_features(spec, level),
    )


def observe_all(spec: GridSpec, level: Level) -> jax.Array:
    """Observation of every tabular state of one level: float32 `[S, H, W, C]`.

    The terminal state's observation is all zeros (its action does not matter).
    """
    def one(i: jax.Array) -> jax.Array:
        state = decode(spec, i)
        return jnp.where(state.done, 0.0, observe(spec, level, state))

    return jax.vmap(one)(jnp.arange(spec.n_states, dtype=jnp.int32))
