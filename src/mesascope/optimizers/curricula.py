"""Level curricula for PPO: a prioritised level buffer, as in prioritised level replay.

Domain randomisation (`dr`) draws every training episode's level uniformly from the training pool.
Prioritised level replay (`plr`, Jiang et al. 2021, "Prioritized Level Replay"; robust PLR in Jiang et
al. 2021, "Replay-Guided Adversarial Environment Design") keeps a buffer of levels with a score each and,
with probability `replay_prob`, starts an episode on a buffer level instead of a fresh one, drawn by
rank of score mixed with staleness. Robust PLR takes gradients only on replayed levels: fresh levels are
played to be scored, not learned from.

A level's score estimates how much there is still to learn on it:

- `pvl`, positive value loss: the mean over the episode's steps of `max(A_t, 0)`, `A_t` the GAE advantage;
- `maxmc`: the mean over the episode's steps of `R_max - V(s_t)`, `R_max` the highest episode return ever
  seen on the level;
- `regret` (`exact-plr`): the exact regret of the current policy under the base objective, `V* - V^pi` at
  the level's start state, solved on the level's tabular view as the audit solves it (discounted values;
  `mesascope.measures.scores`). The two estimates above approximate this quantity; here it is computed,
  not estimated.

ACCEL (`accel`, Parker-Holder et al. 2022, "Evolving Curricula with Regret-Based Environment Design")
is robust PLR whose replayed levels are also edited: after each update, every environment whose last
finished episode was on a replayed level contributes a child of that level, `accel_edits` small edits
away (`Scenario.mutate`, declared per scenario), which enters the buffer with its own score. Here the
children are scored by exact regret, which needs no rollout on them; ACCEL's paper scores them by
rolling them out and estimating.

The buffer here differs from the papers' in one respect, said where it matters: a level's staleness
clock is reset when its score is refreshed (at the end of an episode on it), not when it is drawn, since
PPO's environments here reset asynchronously inside a rollout.

Everything is a pure function over a `LevelBuffer` pytree, so a curriculum runs inside the jitted,
seed-vmapped training program.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mesascope.levels.grid import Level

__all__ = [
    "CURRICULA",
    "PLR_SCORES",
    "LevelBuffer",
    "Reservoir",
    "empty_buffer",
    "empty_reservoir",
    "insert_levels",
    "replay_weights",
    "reservoir_add",
    "score_kind",
]

CURRICULA = ("dr", "plr", "exact-plr", "accel")
"""The curricula PPO can train with (`--set curriculum=...`)."""

PLR_SCORES = ("pvl", "maxmc")
"""The estimated scores `plr` can rank levels by (`--set plr_score=...`); `exact-plr` uses exact regret."""


def score_kind(curriculum: str, plr_score: str) -> str:
    """The score a curriculum ranks levels by: `pvl`, `maxmc`, `regret`, or `none` for `dr`."""
    if curriculum == "dr":
        return "none"
    if curriculum in ("exact-plr", "accel"):
        return "regret"
    return plr_score


class LevelBuffer(NamedTuple):
    """A buffer of `K` levels with scores (filled from slot 0 up; slots at `size` and beyond are empty).

    Attributes:
        levels: `Level` batched `[K, ...]`.
        keys: int32 `[K]`, each level's identity (its index in the training pool), -1 when empty.
        scores: float32 `[K]`, the latest score of each level.
        last_seen: int32 `[K]`, the clock (update count) at which each score was last refreshed.
        max_return: float32 `[K]`, the highest episode return seen on each level (for `maxmc`).
        size: int32 scalar, the number of filled slots.
        clock: int32 scalar, the update count.
    """

    levels: Level
    keys: jax.Array
    scores: jax.Array
    last_seen: jax.Array
    max_return: jax.Array
    size: jax.Array
    clock: jax.Array


def empty_buffer(level: Level, capacity: int) -> LevelBuffer:
    """An empty buffer of `capacity` slots shaped like `level` (one unbatched level)."""
    levels = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity,) + x.shape, x.dtype), level)
    return LevelBuffer(
        levels=levels,
        keys=jnp.full((capacity,), -1, jnp.int32),
        scores=jnp.zeros((capacity,), jnp.float32),
        last_seen=jnp.zeros((capacity,), jnp.int32),
        max_return=jnp.full((capacity,), -jnp.inf, jnp.float32),
        size=jnp.int32(0),
        clock=jnp.int32(0),
    )


def replay_weights(buf: LevelBuffer, temperature: float, staleness_coef: float) -> jax.Array:
    """The probability of drawing each slot on replay: float32 `[K]`, zero on empty slots.

    `P = (1 - rho) P_S + rho P_C` (Jiang et al. 2021): `P_S` is rank prioritisation,
    `h_i = (1 / rank_i)^(1 / temperature)` normalised over the filled slots (rank 1 the highest score,
    ties broken by slot order); `P_C` is staleness, `clock - last_seen_i` normalised (uniform over the
    filled slots when every level was scored this update). All zeros when the buffer is empty.
    """
    k = buf.keys.shape[0]
    filled = jnp.arange(k) < buf.size
    order = jnp.argsort(jnp.where(filled, -buf.scores, jnp.inf), stable=True)
    rank = jnp.zeros((k,), jnp.float32).at[order].set(jnp.arange(1, k + 1, dtype=jnp.float32))
    h = jnp.where(filled, rank ** (-1.0 / temperature), 0.0)
    p_score = h / jnp.maximum(h.sum(), 1e-30)
    stale = jnp.where(filled, (buf.clock - buf.last_seen).astype(jnp.float32), 0.0)
    uniform = filled / jnp.maximum(buf.size, 1).astype(jnp.float32)
    p_stale = jnp.where(stale.sum() > 0, stale / jnp.maximum(stale.sum(), 1e-30), uniform)
    return (1.0 - staleness_coef) * p_score + staleness_coef * p_stale


def _insert_one(buf: LevelBuffer, item: tuple, maxmc: bool) -> LevelBuffer:
    level, key, score, ret, mean_value, valid = item
    k = buf.keys.shape[0]
    filled = jnp.arange(k) < buf.size
    match = filled & (buf.keys == key)
    found = match.any()
    j_found = jnp.argmax(match)
    new_max = jnp.maximum(jnp.where(found, buf.max_return[j_found], -jnp.inf), ret)
    if maxmc:
        score = new_max - mean_value
    full = buf.size >= k
    j_min = jnp.argmin(jnp.where(filled, buf.scores, jnp.inf))
    append = ~found & ~full
    replace = ~found & full & (score > buf.scores[j_min])
    write = valid & (found | append | replace)
    j = jnp.where(found, j_found, jnp.where(append, buf.size, j_min))
    # Writing slot j with its own contents is the no-op, so every field is a select on `write`.
    set_at = lambda arr, v: arr.at[j].set(jnp.where(write, v, arr[j]))  # noqa: E731
    levels = jax.tree_util.tree_map(lambda arr, v: set_at(arr, v), buf.levels, level)
    return buf._replace(
        levels=levels,
        keys=set_at(buf.keys, key),
        scores=set_at(buf.scores, score),
        last_seen=set_at(buf.last_seen, buf.clock),
        max_return=set_at(buf.max_return, new_max),
        size=buf.size + (write & append).astype(jnp.int32),
    )


def insert_levels(
    buf: LevelBuffer,
    levels: Level,
    keys: jax.Array,
    scores: jax.Array,
    returns: jax.Array,
    mean_values: jax.Array,
    valid: jax.Array,
    *,
    maxmc: bool = False,
) -> LevelBuffer:
    """Record `n` scored episodes, in order (a later one sees the buffer an earlier one left).

    A level already in the buffer (same key) gets its new score, its staleness reset and its highest
    return updated. A new level takes the next empty slot; in a full buffer it replaces the lowest-scored
    level if its score is higher, else it is dropped.

    Args:
        buf: The buffer.
        levels: `Level` batched `[n, ...]`.
        keys: int32 `[n]`, the levels' identities.
        scores: float32 `[n]`, their scores (ignored when `maxmc`).
        returns: float32 `[n]`, the episodes' returns.
        mean_values: float32 `[n]`, the mean value prediction over each episode's steps (for `maxmc`).
        valid: bool `[n]`, which items are real episodes.
        maxmc: Score by MaxMC, `max(R_max, return) - mean_value`, with `R_max` the buffer's record.

    Returns:
        The updated buffer.
    """

    def body(b, item):
        return _insert_one(b, item, maxmc), None

    items = (levels, keys.astype(jnp.int32), scores.astype(jnp.float32), returns.astype(jnp.float32),
             mean_values.astype(jnp.float32), valid)
    buf, _ = jax.lax.scan(body, buf, items)
    return buf


class Reservoir(NamedTuple):
    """A uniform sample of the levels of every training episode so far (reservoir sampling, Vitter's R).

    Attributes:
        levels: `Level` batched `[R, ...]`; the first `min(count, R)` slots are filled.
        count: int32 scalar, episodes offered so far.
    """

    levels: Level
    count: jax.Array


def empty_reservoir(level: Level, capacity: int) -> Reservoir:
    """An empty reservoir of `capacity` slots shaped like `level` (one unbatched level)."""
    return Reservoir(jax.tree_util.tree_map(lambda x: jnp.zeros((capacity,) + x.shape, x.dtype), level), jnp.int32(0))


def reservoir_add(res: Reservoir, key: jax.Array, levels: Level, valid: jax.Array) -> Reservoir:
    """Offer `n` episodes' levels (batched `[n, ...]`, `valid` bool `[n]`): after `c` offers in all, each
    offered episode is in the reservoir with probability `min(1, R / c)`."""
    capacity = jax.tree_util.tree_leaves(res.levels)[0].shape[0]

    def body(r, item):
        level, ok, k = item
        n = r.count + ok.astype(jnp.int32)
        j = jax.random.randint(k, (), 0, jnp.maximum(n, 1))
        slot = jnp.where(r.count < capacity, r.count, j)
        write = ok & (slot < capacity)
        slot = jnp.minimum(slot, capacity - 1)
        stored = jax.tree_util.tree_map(lambda a, v: a.at[slot].set(jnp.where(write, v, a[slot])), r.levels, level)
        return Reservoir(stored, n), None

    keys = jax.random.split(key, valid.shape[0])
    res, _ = jax.lax.scan(body, res, (levels, valid, keys))
    return res
