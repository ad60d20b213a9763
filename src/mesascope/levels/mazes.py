"""Seeded maze generation in JAX (vmappable over keys).

Mazes are uniform spanning trees of a grid of cells (Aldous-Broder random walk), drawn into a wall
grid the way procgen's Maze draws them: cells sit at odd coordinates, passages between them are carved,
so there is exactly one path between any two free squares. A maze of side `m` (odd) is placed in the
bottom-left of a `G x G` grid (`m <= G`); the rest is wall.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mesascope.levels.grid import Level

__all__ = ["edit_keeping_regions", "edit_level", "maze_origin", "random_maze", "reachable_squares", "room_walls",
           "sample_distinct_cells", "sample_free_cell"]

_DIRS = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)


def maze_origin(grid_size: int, maze_size: jax.Array) -> jax.Array:
    """Grid (row, col) of the maze's top-left wall square: int32 `[2]`."""
    return jnp.stack([grid_size - maze_size, jnp.zeros_like(maze_size)]).astype(jnp.int32)


def random_maze(key: jax.Array, grid_size: int, maze_size: jax.Array) -> jax.Array:
    """A random perfect maze: bool `[G, G]` walls.

    Args:
        key: PRNG key.
        grid_size: Static side `G` of the wall grid (odd).
        maze_size: int scalar, side `m` of the maze (odd, `5 <= m <= G`); may vary per level.
    """
    max_cells = (grid_size - 1) // 2
    n = (maze_size - 1) // 2  # active cells per side
    origin = maze_origin(grid_size, maze_size)

    def square(cell: jax.Array) -> jax.Array:
        return origin + 2 * cell + 1

    k0, k1 = jax.random.split(key)
    start = jax.random.randint(k0, (2,), 0, n)
    walls = jnp.ones((grid_size, grid_size), bool)
    sq = square(start)
    walls = walls.at[sq[0], sq[1]].set(False)
    visited = jnp.zeros((max_cells, max_cells), bool).at[start[0], start[1]].set(True)

    def cond(carry):
        _, _, _, count, _ = carry
        return count < n * n

    def body(carry):
        key, cur, visited, count, walls = carry
        key, sub = jax.random.split(key)
        nxt = cur + _DIRS[jax.random.randint(sub, (), 0, 4)]
        ok = (nxt >= 0).all() & (nxt < n).all()
        nxt = jnp.where(ok, nxt, cur)
        fresh = ok & ~visited[nxt[0], nxt[1]]
        a, b = square(cur), square(nxt)
        mid = (a + b) // 2
        walls = jnp.where(fresh, walls.at[mid[0], mid[1]].set(False).at[b[0], b[1]].set(False), walls)
        visited = visited.at[nxt[0], nxt[1]].set(visited[nxt[0], nxt[1]] | fresh)
        return key, nxt, visited, count + fresh.astype(jnp.int32), walls

    _, _, _, _, walls = jax.lax.while_loop(cond, body, (k1, start, visited, jnp.int32(1), walls))
    return walls


def sample_free_cell(key: jax.Array, allowed: jax.Array) -> jax.Array:
    """A uniformly random True square of a bool `[H, W]` mask: int32 `[2]` (row, col).

    The mask must have at least one True square (callers build it from free maze squares).
    """
    h, w = allowed.shape
    logits = jnp.where(allowed.reshape(-1), 0.0, -jnp.inf)
    flat = jax.random.categorical(key, logits)
    return jnp.stack([flat // w, flat % w]).astype(jnp.int32)


def room_walls(height: int, width: int | None = None) -> jax.Array:
    """An open room: bool `[height + 2, width + 2]` walls, True only on the border (width defaults to height)."""
    width = height if width is None else width
    return jnp.ones((height + 2, width + 2), bool).at[1:-1, 1:-1].set(False)


def sample_distinct_cells(keys: jax.Array, allowed: jax.Array) -> jax.Array:
    """One `sample_free_cell` per key, in order, each on a square none of the earlier ones took.

    Args:
        keys: `[N]` PRNG keys (e.g. the start first, then each object).
        allowed: bool `[H, W]`, the squares any of them may use.

    Returns:
        int32 `[N, 2]` (row, col) per key.
    """
    rows, cols = jnp.mgrid[: allowed.shape[0], : allowed.shape[1]]
    cells = []
    for k in keys:
        cell = sample_free_cell(k, allowed)
        cells.append(cell)
        allowed = allowed & ~((rows == cell[0]) & (cols == cell[1]))
    return jnp.stack(cells)



def reachable_squares(walls: jax.Array, start: jax.Array) -> jax.Array:
    """bool `[H, W]`: the free squares a 4-connected walk from `start` reaches (a flood fill)."""
    h, w = walls.shape
    free = ~walls
    seen = jnp.zeros((h, w), bool).at[start[0], start[1]].set(True)

    def grow(_, seen):
        pad = jnp.pad(seen, 1)
        near = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
        return seen | (near & free)

    # A path visits each square at most once, so H * W growth steps reach everything reachable.
    return jax.lax.fori_loop(0, h * w, grow, seen)


def edit_level(key: jax.Array, level: Level, keep_free: jax.Array) -> Level:
    """One ACCEL-style edit of a maze level that keeps it valid and solvable.

    With probability 1/2 a present object moves to a free 4-neighbour square (not the start, not another
    object; it stays put when there is none). Otherwise one square inside the bounding box of the maze's
    free squares is toggled: a wall is removed, or a wall is added unless the square is the start, holds
    an object, is in `keep_free`, or the wall would cut an object or a `keep_free` square off from the
    start (then the level is left as it was).

    Args:
        key: PRNG key.
        level: One unbatched `Level`.
        keep_free: bool `[H, W]`, squares that must stay free and reachable (e.g. the corner goal).

    Returns:
        The edited `Level` (same shapes and dtypes).
    """
    h, w = level.walls.shape
    rows, cols = jnp.mgrid[:h, :w]
    k_which, k_obj, k_dir, k_cell = jax.random.split(key, 4)
    present = level.obj_kind > 0
    occupied = jnp.zeros((h, w), bool).at[level.obj_pos[:, 0], level.obj_pos[:, 1]].max(present)
    is_start = (rows == level.start[0]) & (cols == level.start[1])

    # Move an object: one of the present ones, to one of its free neighbours.
    i = jax.random.categorical(k_obj, jnp.where(present, 0.0, -jnp.inf))
    here = level.obj_pos[i]
    steps = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1]], jnp.int32)
    targets = jnp.clip(here[None] + steps, 0, jnp.array([h - 1, w - 1]))
    open_ = ~level.walls[targets[:, 0], targets[:, 1]] & ~occupied[targets[:, 0], targets[:, 1]] \
        & ~is_start[targets[:, 0], targets[:, 1]] & (targets != here[None]).any(-1)
    d = jax.random.categorical(k_dir, jnp.where(open_, 0.0, -jnp.inf))
    moved_pos = level.obj_pos.at[i].set(jnp.where(open_.any(), targets[d], here))
    moved = level._replace(obj_pos=moved_pos)

    # Toggle a wall square inside the maze.
    free = ~level.walls
    r_any, c_any = free.any(1), free.any(0)
    r_lo, r_hi = jnp.argmax(r_any), h - 1 - jnp.argmax(r_any[::-1])
    c_lo, c_hi = jnp.argmax(c_any), w - 1 - jnp.argmax(c_any[::-1])
    inside = (rows >= r_lo) & (rows <= r_hi) & (cols >= c_lo) & (cols <= c_hi)
    candidates = inside & ~is_start & ~occupied & ~keep_free
    cell = sample_free_cell(k_cell, candidates)
    walls = level.walls.at[cell[0], cell[1]].set(~level.walls[cell[0], cell[1]])
    must_reach = keep_free | occupied
    solvable = ~(must_reach & ~reachable_squares(walls, level.start)).any()
    toggled = level._replace(walls=jnp.where(solvable & candidates.any(), walls, level.walls))

    move = jax.random.bernoulli(k_which)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(move, a, b), moved, toggled)


def edit_keeping_regions(key: jax.Array, level: Level) -> Level:
    """`edit_level` with the level's region squares (a corner goal, the end of a coin level) kept free and
    reachable: the ACCEL edit the gridworld scenarios declare (`Scenario.mutate`)."""
    return edit_level(key, level, level.regions.any(0))
