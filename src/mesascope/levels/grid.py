"""The gridworld engine: pure JAX functions over (batches of) levels.

A level is a finite deterministic MDP (SPEC.md section 1): a grid of walls, an agent, and typed objects.
Every function here works on one level and one state; batch with `jax.vmap` (over levels, over
environments, over seeds). The same `step` drives the simulator, PPO and the exact tabular view
(`mesascope.levels.tabular`), so the MDP that is solved exactly is the one the agent was trained in.

Objects and what entering their cell does (an object is inert once consumed):

==========  ==========  ========  ============================================
kind        consumed    terminal  note
==========  ==========  ========  ============================================
cheese      yes         yes       the goal of the cheese mazes
coin        yes         yes       the goal at the end of coin-run levels
key         yes         no        adds one key to the inventory
chest       if a key    no        opens (uses a key) only when a key is held
lava        no          no        a terrain the intended objective may forbid
door_*      yes         yes       coloured exits / markers
apple       yes         no        a collectible that does not end the episode
shield      yes         no        adds one to the inventory (shared with keys)
monster     if a held   no        killed (uses a shield) when entered holding one;
            shield                its feature is the harm, see below
==========  ==========  ========  ============================================

Features `phi(s, a, s')` (SPEC.md section 1) are, in order: one per object kind the level family uses
(`GridSpec.kinds`; 1 when that kind's
interaction fires on this transition), `step` (1 on every transition out of a live state), then one per
scenario region (1 when the agent is in that region after the transition). The one exception is
`monster`: its feature is the number of monsters still alive after the transition (wherever the agent
is), so a weight on it is a per-step harm that lasts until each monster is killed (a static stand-in for
monsters that chase the agent); killing one shows in its consumed bit, not in a feature. Objectives are weights over
these names (`mesascope.types.Objective`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ACTIONS",
    "ACTION_DELTAS",
    "GridSpec",
    "Level",
    "OBJECT_KINDS",
    "State",
    "feature_names",
    "observe",
    "reset",
    "step",
]

OBJECT_KINDS: tuple[str, ...] = (
    "none",
    "cheese",
    "coin",
    "key",
    "chest",
    "lava",
    "door_red",
    "door_green",
    "door_blue",
    "door_yellow",
    "apple",
    "shield",
    "monster",
)
"""Object kinds; index 0 marks an empty object slot."""

KIND_INDEX = {name: i for i, name in enumerate(OBJECT_KINDS)}

ACTIONS: tuple[str, ...] = ("up", "right", "down", "left")
ACTION_DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int32)

_TERMINAL = np.array([k in ("cheese", "coin") or k.startswith("door_") for k in OBJECT_KINDS])
_CONSUMABLE = np.array(
    [k in ("cheese", "coin", "key", "chest", "apple", "shield", "monster") or k.startswith("door_") for k in OBJECT_KINDS]
)
_KEY = KIND_INDEX["key"]
_CHEST = KIND_INDEX["chest"]
_SHIELD = KIND_INDEX["shield"]
_MONSTER = KIND_INDEX["monster"]


@dataclass(frozen=True)
class GridSpec:
    """Static shape of a family of levels (hashable; used as a jit static argument).

    Attributes:
        height: Grid rows `H` (walls included).
        width: Grid columns `W`.
        n_objects: Object slots `N` per level (unused slots have kind "none").
        n_tracked: The first `n_tracked` object slots have their consumed bit in the tabular state.
            Objects that are never consumed without ending the episode (cheese, coins, doors, lava) need
            no bit, which keeps the enumerable state space small.
        max_inventory: Keys or shields the agent can hold (0 when a scenario has neither).
        regions: Names of the scenario's location features (e.g. ``("corner",)``).
        kinds: The object kinds this family of levels uses; they alone get an observation channel and
            a feature, which keeps networks and feature vectors small.
        view: "full" (the grid as it is, `[H, W, C]`) or "egocentric" (the grid re-centred on the
            agent, `[2H-1, 2W-1, C]`, outside marked as wall). Egocentric views make local navigation
            skills position-independent, which small networks learn far faster.
        gamma: Discount of the MDP.
        max_steps: Episode length limit used by the simulator and PPO (the exact solver is
            infinite-horizon discounted).
        observed_regions: Regions (names from `regions`) the agent can see: each gets an observation
            channel after the others, e.g. a visible button or screen that is not an object kind.
        terminal_regions: Regions whose squares end the episode when entered (like a coin), e.g. a
            scenario-specific goal square.
        region_deltas: Add one feature `delta_<region>` per region after the region features:
            `region(s') - region(s)`, so rewards that depend on where the agent came from (e.g.
            potential-based shaping, `gamma * Phi(s') - Phi(s)`) are linear in the features.
    """

    height: int
    width: int
    n_objects: int
    n_tracked: int = 0
    max_inventory: int = 0
    regions: tuple[str, ...] = ()
    kinds: tuple[str, ...] = OBJECT_KINDS[1:]
    view: str = "egocentric"
    gamma: float = 0.99
    max_steps: int = 256
    observed_regions: tuple[str, ...] = ()
    terminal_regions: tuple[str, ...] = ()
    region_deltas: bool = False

    def __post_init__(self) -> None:
        stray = [r for r in self.observed_regions + self.terminal_regions if r not in self.regions]
        if stray:
            raise ValueError(f"observed/terminal region(s) {stray} are not in regions {self.regions}")
        if self.view not in ("full", "egocentric"):
            raise ValueError(f"unknown view {self.view!r}; choose 'full' or 'egocentric'")
        if not 0 <= self.n_tracked <= self.n_objects:
            raise ValueError(f"n_tracked must be between 0 and n_objects ({self.n_objects}); got {self.n_tracked}")
        unknown = [k for k in self.kinds if k not in OBJECT_KINDS[1:]]
        if unknown:
            raise ValueError(f"unknown object kind(s) {unknown}; known kinds: {OBJECT_KINDS[1:]}")

    @property
    def n_states(self) -> int:
        """Size `S` of the enumerable state space, including the absorbing terminal state (last)."""
        return self.height * self.width * (2**self.n_tracked) * (self.max_inventory + 1) + 1

    @property
    def n_actions(self) -> int:
        return len(ACTIONS)

    @property
    def n_channels(self) -> int:
        """Observation channels: wall, agent (full view only: egocentric views always have the agent
        at the centre), one per object kind in `kinds`, inventory (if any)."""
        agent = 1 if self.view == "full" else 0
        return 1 + agent + len(self.kinds) + (1 if self.max_inventory > 0 else 0) + len(self.observed_regions)

    def kind_slots(self) -> np.ndarray:
        """int32 `[len(OBJECT_KINDS)]`: each global kind's position in `kinds` (-1 when absent)."""
        slots = np.full(len(OBJECT_KINDS), -1, np.int32)
        for i, k in enumerate(self.kinds):
            slots[KIND_INDEX[k]] = i
        return slots

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        if self.view == "egocentric":
            return (2 * self.height - 1, 2 * self.width - 1, self.n_channels)
        return (self.height, self.width, self.n_channels)


def feature_names(spec: GridSpec) -> tuple[str, ...]:
    """Names of the `K` transition features of levels with this spec, in order."""
    deltas = tuple(f"delta_{r}" for r in spec.regions) if spec.region_deltas else ()
    return tuple(spec.kinds) + ("step",) + tuple(spec.regions) + deltas


class Level(NamedTuple):
    """One level (or a batch of levels, with a leading `[L]` axis on every field).

    Attributes:
        walls: bool `[H, W]`.
        obj_kind: int32 `[N]`, index into `OBJECT_KINDS` (0 = empty slot).
        obj_pos: int32 `[N, 2]`, (row, col) of each object.
        start: int32 `[2]`, the agent's start cell.
        regions: bool `[R, H, W]`, the scenario's named location features.
    """

    walls: jax.Array
    obj_kind: jax.Array
    obj_pos: jax.Array
    start: jax.Array
    regions: jax.Array


class State(NamedTuple):
    """Dynamic state of one episode.

    Attributes:
        pos: int32 `[2]`, agent (row, col).
        consumed: bool `[N]`.
        inventory: int32 scalar, keys or shields held.
        done: bool scalar, the episode reached a terminal object.
    """

    pos: jax.Array
    consumed: jax.Array
    inventory: jax.Array
    done: jax.Array


def reset(level: Level) -> State:
    """The start state of `level`."""
    n = level.obj_kind.shape[-1]
    return State(
        pos=jnp.asarray(level.start, jnp.int32),
        consumed=jnp.zeros((n,), bool),
        inventory=jnp.zeros((), jnp.int32),
        done=jnp.zeros((), bool),
    )


def step(spec: GridSpec, level: Level, state: State, action: jax.Array) -> tuple[State, jax.Array]:
    """One deterministic transition.

    Args:
        spec: Static level shape.
        level: One level.
        state: Current state.
        action: int scalar in `[0, 4)`, index into `ACTIONS`.

    Returns:
        `(next_state, phi)` with `phi` float32 `[K]`, the transition features (all zero out of a
        terminal state, which is absorbing).
    """
    target = state.pos + jnp.asarray(ACTION_DELTAS)[action]
    inside = (target >= 0).all() & (target[0] < spec.height) & (target[1] < spec.width)
    safe = jnp.clip(target, 0, jnp.array([spec.height - 1, spec.width - 1]))
    blocked = ~inside | level.walls[safe[0], safe[1]]
    pos = jnp.where(blocked, state.pos, safe)

    kind = level.obj_kind
    here = (level.obj_pos == pos).all(-1) & ~state.consumed & (kind > 0)
    has_key = state.inventory > 0
    # Chests and monsters need a held key/shield (the same inventory) to fire, and use it up.
    needs_item = (kind == _CHEST) | (kind == _MONSTER)
    fires = here & (~needs_item | has_key)
    consumable = jnp.asarray(_CONSUMABLE)[kind]
    terminal = (fires & jnp.asarray(_TERMINAL)[kind]).any()
    for name in spec.terminal_regions:
        terminal = terminal | level.regions[spec.regions.index(name), pos[0], pos[1]]
    gained = (fires & ((kind == _KEY) | (kind == _SHIELD))).sum() - (fires & needs_item).sum()
    inventory = jnp.clip(state.inventory + gained, 0, spec.max_inventory).astype(jnp.int32)

    slot = jnp.asarray(spec.kind_slots())[kind]
    # A monster's feature is its harm: 1 per monster still alive after this transition (not the kill).
    alive = (kind == _MONSTER) & ~(state.consumed | (fires & consumable))
    counts = jnp.where(kind == _MONSTER, alive, fires).astype(jnp.float32)
    kind_feats = jnp.zeros((len(spec.kinds) + 1,), jnp.float32).at[slot].add(counts)[:-1]
    region_feats = level.regions[:, pos[0], pos[1]].astype(jnp.float32)
    parts = [kind_feats, jnp.ones((1,), jnp.float32), region_feats]
    if spec.region_deltas:
        parts.append(region_feats - level.regions[:, state.pos[0], state.pos[1]].astype(jnp.float32))
    phi = jnp.concatenate(parts)

    live = ~state.done
    nxt = State(
        pos=jnp.where(live, pos, state.pos),
        consumed=jnp.where(live, state.consumed | (fires & consumable), state.consumed),
        inventory=jnp.where(live, inventory, state.inventory),
        done=state.done | terminal,
    )
    return nxt, phi * live


def observe(spec: GridSpec, level: Level, state: State) -> jax.Array:
    """Symbolic observation: float32 `spec.obs_shape` with one channel per cell property.

    With `spec.view == "full"` the shape is `[H, W, C]`; with "egocentric" it is `[2H-1, 2W-1, C]`,
    the agent always at the centre and everything outside the grid drawn as wall.

    Channels: 0 walls, 1 agent (full view only), then present (unconsumed) objects, one channel per kind in
    `spec.kinds`, then (only when the level has keys) the inventory as a fraction of
    `max_inventory`, broadcast over the grid, and last one channel per `spec.observed_regions`.
    """
    h, w = spec.height, spec.width
    walls = level.walls.astype(jnp.float32)
    agent = jnp.zeros((h, w), jnp.float32).at[state.pos[0], state.pos[1]].set(1.0)
    present = (level.obj_kind > 0) & ~state.consumed
    # Slot -1 (a kind outside spec.kinds, or an empty slot) lands in a scratch channel that is dropped.
    slot = jnp.asarray(spec.kind_slots())[level.obj_kind]
    objs = jnp.zeros((h, w, len(spec.kinds) + 1), jnp.float32)
    objs = objs.at[level.obj_pos[:, 0], level.obj_pos[:, 1], slot].add(present.astype(jnp.float32))
    parts = [walls[..., None], agent[..., None], objs[..., :-1]]
    if spec.view == "egocentric":
        del parts[1]
    if spec.max_inventory > 0:
        parts.append(jnp.full((h, w, 1), state.inventory / spec.max_inventory, jnp.float32))
    for name in spec.observed_regions:
        parts.append(level.regions[spec.regions.index(name)][..., None].astype(jnp.float32))
    grid = jnp.concatenate(parts, axis=-1)
    if spec.view == "full":
        return grid
    outside = jnp.zeros((spec.n_channels,), jnp.float32).at[0].set(1.0)
    padded = jnp.broadcast_to(outside, (3 * h - 2, 3 * w - 2, spec.n_channels))
    padded = jax.lax.dynamic_update_slice(padded, grid, (h - 1, w - 1, 0))
    return jax.lax.dynamic_slice(padded, (state.pos[0], state.pos[1], 0), (2 * h - 1, 2 * w - 1, spec.n_channels))
