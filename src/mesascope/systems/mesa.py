"""Explicit mesa-optimizers: systems that search with their own, readable objective (SPEC.md section 1).

A `MesaOptimizer` is handed the level as a world model (as a planner in mctx is handed its model) and,
at every state, plans by soft value iteration against its **own** objective, then acts on the result
(a Boltzmann choice over its planned Q-values). Its internal search space `X` is the grid's cells as the
planner perceives them; its mesa-objective is `g(x) = theta . psi(x)`, a learned linear map from what
it perceives in a cell to reward:

* one feature per object kind of the level family (the kind is present in `x` at the start);
* `up` and `right`: the cell's height and horizontal position in the grid, scaled to [0, 1], so that a
  drive towards a place (e.g. the top-right corner) is expressible without being handed that place.

`g` is paid whenever the agent enters or stays in a cell. Because `psi` lives on the planner's cells and
the base objective on the level's transitions, the two can only be compared through a `Bridge`. The
default bridge returns the transition form (`mesascope.levels.tabular.TransitionReward`): what the entered
cell's position says (`up`, `right`, regions) is a function of the next state `s'`; what the move finds
there (an object not yet consumed) belongs to `(s, a)` (`mesa_next_features`).

The base optimizer tunes `theta` (the mesa-objective) and nothing else: by gradient descent through the
differentiable planner and an exact policy evaluation of the base objective (`train_gradient`), or by
evolution (`train_evolution`, the genetic algorithm of `mesascope.optimizers.evolution` with the base
value as fitness). The learned mesa-objective is then read off directly (`mesa_objective`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mesascope.levels.grid import GridSpec, Level, step
from mesascope.levels.tabular import TabularMDP, TransitionReward, decode
from mesascope.optimizers.evolution import EvolutionConfig, next_generation
from mesascope.solve.dp import policy_evaluation_dense
from mesascope.systems.bridge import Bridge, require_bridge

__all__ = [
    "MESA_DOMAIN",
    "MesaOptimizer",
    "MesaParams",
    "TRANSITION_DOMAIN",
    "TrainResult",
    "as_mapping",
    "mesa_feature_names",
    "mesa_features",
    "mesa_next_features",
    "soft_q",
    "split_transition_reward",
    "train_evolution",
    "train_gradient",
]

MESA_DOMAIN = "cells perceived by the planner"
TRANSITION_DOMAIN = "transitions (s, a, s') of the level"


def mesa_feature_names(spec: GridSpec) -> tuple[str, ...]:
    """Names of the perception features `psi` of a mesa-optimizer on levels of this spec."""
    return tuple(spec.kinds) + ("up", "right")


def mesa_features(spec: GridSpec, level: Level, *, regions: bool = False) -> jax.Array:
    """`psi(s, a)`: the perception features of the cell each (state, action) leads to, float32 `[S, A, M]`.

    Objects count as present in a cell when they are there at the start of the level and not yet
    consumed in `s` (the planner sees the board as it is). With `regions`, one more feature per region
    of the level family (the entered cell belongs to it) sits between the kinds and `up`/`right`
    (`mesascope.systems.pointer.pointer_features`). Transitions out of the terminal state perceive nothing.
    """
    slots = jnp.asarray(spec.kind_slots())

    def one(index: jax.Array, action: jax.Array) -> jax.Array:
        state = decode(spec, index)
        nxt, _ = step(spec, level, state, action)
        here = (level.obj_pos == nxt.pos).all(-1) & ~state.consumed & (level.obj_kind > 0)
        kinds = jnp.zeros((len(spec.kinds) + 1,), jnp.float32).at[slots[level.obj_kind]].add(here)[:-1]
        cell = level.regions[:, nxt.pos[0], nxt.pos[1]].astype(jnp.float32) if regions else jnp.zeros((0,), jnp.float32)
        up = (spec.height - 1 - nxt.pos[0]) / max(spec.height - 1, 1)
        right = nxt.pos[1] / max(spec.width - 1, 1)
        live = ~state.done
        return jnp.concatenate([kinds, cell, jnp.stack([up, right])]) * live

    states = jnp.arange(spec.n_states, dtype=jnp.int32)
    actions = jnp.arange(spec.n_actions, dtype=jnp.int32)
    return jax.vmap(lambda s: jax.vmap(lambda a: one(s, a))(actions))(states)


def mesa_next_features(spec: GridSpec, level: Level, *, regions: bool = False) -> jax.Array:
    """The next-state part of `mesa_features`: float32 `[S, M]` (SPEC.md section 3).

    The entered cell's position (`up`, `right`) and regions are functions of where the agent is after
    the transition, `s'`; object kinds (present and not consumed before the move) describe the move and
    get 0 here. The terminal state has no position: 0, so a transition that ends the episode keeps all
    of its perception in the `(s, a)` part.
    """
    n_kinds = len(spec.kinds)

    def one(index: jax.Array) -> jax.Array:
        state = decode(spec, index)
        cell = level.regions[:, state.pos[0], state.pos[1]].astype(jnp.float32) if regions else jnp.zeros((0,), jnp.float32)
        up = (spec.height - 1 - state.pos[0]) / max(spec.height - 1, 1)
        right = state.pos[1] / max(spec.width - 1, 1)
        return jnp.concatenate([jnp.zeros((n_kinds,), jnp.float32), cell, jnp.stack([up, right])]) * ~state.done

    return jax.vmap(one)(jnp.arange(spec.n_states, dtype=jnp.int32))


def split_transition_reward(realised: jax.Array, next_part: jax.Array, next_state: jax.Array) -> TransitionReward:
    """A reward whose realised table `[S, A]` has the next-state part `next_part` `[S]` (one level)."""
    return TransitionReward(realised - next_part[next_state], next_part)


def soft_q(next_state: jax.Array, reward: jax.Array, gamma: float, beta: float, iters: int) -> jax.Array:
    """The planner's soft `Q` `[S, A]` after `iters` soft Bellman backups of `reward` `[S, A]` (one level)."""
    # A fixed number of soft Bellman backups keeps the planner differentiable end to end.
    def body(v, _):
        q = reward + gamma * v[next_state]
        return jax.nn.logsumexp(beta * q, axis=-1) / beta, None

    v, _ = jax.lax.scan(body, jnp.zeros(reward.shape[0], reward.dtype), None, iters)
    return reward + gamma * v[next_state]


class MesaParams(NamedTuple):
    """The learnable part of a mesa-optimizer: its objective's weights `theta`, float32 `[M]`."""

    theta: jax.Array


@dataclass(frozen=True)
class MesaOptimizer:
    """A planner with its own objective.

    Attributes:
        spec: The level family it plans on.
        beta: Inverse temperature of its soft planning and of its action choice.
        gamma: Its own planning discount.
        iters: Soft value-iteration sweeps per decision.
        points_to_base: Class-level fact: whether the mesa-objective is, by construction, a pointer to
            the system's own model of the base objective (corrigible alignment, SPEC.md section 7).
            False here: this objective is learned directly; `mesascope.systems.pointer` is a pointer.
    """

    points_to_base: ClassVar[bool] = False

    spec: GridSpec
    beta: float = 10.0
    gamma: float = 0.95
    iters: int = 100

    @property
    def feature_names(self) -> tuple[str, ...]:
        return mesa_feature_names(self.spec)

    def init(self, key: jax.Array, scale: float = 0.1) -> MesaParams:
        """Small random initial mesa-objective weights."""
        return MesaParams(scale * jax.random.normal(key, (len(self.feature_names),), jnp.float32))

    def features(self, level: Level) -> jax.Array:
        """`psi(s, a)` over `feature_names` on one level: float32 `[S, A, M]`."""
        return mesa_features(self.spec, level)

    def next_features(self, level: Level) -> jax.Array:
        """The next-state part of `features` (SPEC.md section 3): float32 `[S, M]`."""
        return mesa_next_features(self.spec, level)

    def mesa_reward(self, params: MesaParams, level: Level) -> jax.Array:
        """The mesa-objective as the planner uses it on one level: float32 `[S, A]`."""
        return self.features(level) @ params.theta

    def transition_reward(self, params: MesaParams, level: Level, tab: TabularMDP) -> TransitionReward:
        """`mesa_reward` in transition form: its `s'` part kept as a function of `s'` (SPEC.md section 3)."""
        return split_transition_reward(self.mesa_reward(params, level), self.next_features(level) @ params.theta, tab.next_state)

    def action_probs(self, params: MesaParams, level: Level, tab: TabularMDP) -> jax.Array:
        """What it does on every state of one level: float32 `[S, A]` (plan, then Boltzmann choice)."""
        q = soft_q(tab.next_state, self.mesa_reward(params, level), self.gamma, self.beta, self.iters)
        return jax.nn.softmax(self.beta * q, axis=-1)

    def mesa_objective(self, params: MesaParams) -> dict[str, float]:
        """The learned mesa-objective, read off directly: feature name -> weight."""
        return {name: float(w) for name, w in zip(self.feature_names, np.asarray(params.theta))}

    def default_bridge(self) -> Bridge:
        """The bridge that pays `g` on the cell a transition enters: exactly what the planner optimises."""
        return Bridge(
            name="cell-entered",
            source_domain=MESA_DOMAIN,
            target_domain=TRANSITION_DOMAIN,
            to_reward=self.transition_reward,
            note="the planner is paid g(x) for the cell x each transition enters, so g pulls back to R(s, a, s') = g(x(s')); "
            "the entered cell's position is a function of s', what the move finds there of (s, a)",
        )

    def bridged_reward(self, params: MesaParams, level: Level, tab: TabularMDP, bridge: Bridge | None) -> TransitionReward:
        """The mesa-objective as a reward over the level's transitions `R(s, a, s')`, via an explicit bridge.

        Raises:
            TypeMismatchError: when `bridge` is None or connects other domains.
        """
        return require_bridge(MESA_DOMAIN, TRANSITION_DOMAIN, bridge).to_reward(params, level, tab)


class TrainResult(NamedTuple):
    """A trained mesa-optimizer and its learning curve (mean base value on the training batch)."""

    params: MesaParams
    curve: np.ndarray


def _base_value(system: MesaOptimizer, params: MesaParams, levels: Level, tabs: TabularMDP, w_base: jax.Array, gamma: float) -> jax.Array:
    def one(level, tab):
        probs = system.action_probs(params, level, tab)
        # The dense solve is differentiable, so gradients flow from the base value into the planner.
        v = policy_evaluation_dense(tab.next_state, tab.features @ w_base, probs, gamma)
        return v[tab.start]

    return jax.vmap(one)(levels, tabs).mean()


def train_gradient(
    system: MesaOptimizer,
    levels: Level,
    tabs: TabularMDP,
    w_base: jax.Array,
    *,
    key: jax.Array,
    steps: int = 150,
    lr: float = 0.05,
    gamma: float = 0.99,
) -> TrainResult:
    """Gradient ascent on the base objective's exact value, through the differentiable planner.

    Args:
        levels, tabs: A `[L]` batch of training levels and their tabular views.
        w_base: float32 `[K]`, the base objective's weights over the level's features.
    """
    params = system.init(key)
    opt = optax.adam(lr)
    state = opt.init(params)
    value_and_grad = jax.jit(jax.value_and_grad(lambda p: -_base_value(system, p, levels, tabs, w_base, gamma)))

    curve = []
    for _ in range(steps):
        loss, grads = value_and_grad(params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        curve.append(-float(loss))
    return TrainResult(params, np.asarray(curve))


def train_evolution(
    system: MesaOptimizer,
    levels: Level,
    tabs: TabularMDP,
    w_base: jax.Array,
    *,
    key: jax.Array,
    generations: int = 40,
    population: int = 32,
    elite: int = 8,
    sigma: float = 0.3,
    gamma: float = 0.99,
) -> TrainResult:
    """Truncation-selection evolution of the mesa-objective's weights (fitness = exact base value).

    The genetic algorithm of `mesascope.optimizers.evolution` (`next_generation`): children copy one of
    the best `elite` individuals (no recombination) plus Gaussian noise of sd `sigma`, and the best
    individual is kept unchanged. The generations run on the host around one jitted, vmapped scoring of
    the whole population (planner and exact policy evaluation on every level); `curve` holds each
    generation's best score, before its selection.
    """
    fitness = jax.jit(jax.vmap(lambda theta: _base_value(system, MesaParams(theta), levels, tabs, w_base, gamma)))
    cfg = EvolutionConfig(
        pop_size=population, dim=len(system.feature_names), generations=generations, mutation_sd=sigma,
        selection="truncation", truncation=elite / population, recombination=False, elite=1,
    )
    key, sub = jax.random.split(key)
    pop = jax.vmap(lambda k: system.init(k).theta)(jax.random.split(sub, population))
    curve = []
    for _ in range(generations):
        scores = fitness(pop)
        # nanmax: the score of the individual the selection ranks first (argsort puts NaN last).
        curve.append(float(jnp.nanmax(scores)))
        key, k_pick, k_noise = jax.random.split(key, 3)
        pop = next_generation(cfg, pop, scores, select=k_pick, mutate=k_noise)
    scores = fitness(pop)
    return TrainResult(MesaParams(pop[jnp.argmax(scores)]), np.asarray(curve))


def as_mapping(params: MesaParams, names: tuple[str, ...]) -> Mapping[str, float]:
    """Weights as a name -> value mapping (for audit.json)."""
    return {n: float(w) for n, w in zip(names, np.asarray(params.theta))}
