"""The tabular view of a level: every state enumerated, so values are exact (SPEC.md sections 1-2).

State index layout (static for a `GridSpec`)::

    index = ((row * W + col) * 2**n_tracked + consumed_bits) * (max_inventory + 1) + inventory

and the last index `S - 1` is the absorbing terminal state. Indices for wall cells or impossible
combinations exist but are never reached from the start state; they cost a little memory and nothing
else. The tabular arrays are produced by running the simulator's own `step` on every (state, action),
so the solved MDP and the simulated one cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mesascope.levels.grid import GridSpec, Level, State, observe, reset, step

__all__ = ["TabularMDP", "decode", "encode", "observe_all", "tabularize"]


class TabularMDP(NamedTuple):
    """A level as a finite deterministic MDP (leading `[L]` axis when batched).

    Attributes:
        next_state: int32 `[S, A]`, successor index of each (state, action).
        features: float32 `[S, A, K]`, `phi(s, a, s')` of that transition.
        start: int32 scalar, index of the start state.
        terminal: bool `[S]`, absorbing states.
    """

    next_state: jax.Array
    features: jax.Array
    start: jax.Array
    terminal: jax.Array


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
    )


def observe_all(spec: GridSpec, level: Level) -> jax.Array:
    """Observation of every tabular state of one level: float32 `[S, H, W, C]`.

    The terminal state's observation is all zeros (its action does not matter).
    """
    def one(i: jax.Array) -> jax.Array:
        state = decode(spec, i)
        return jnp.where(state.done, 0.0, observe(spec, level, state))

    return jax.vmap(one)(jnp.arange(spec.n_states, dtype=jnp.int32))
