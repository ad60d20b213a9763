"""`random_maze` draws perfect mazes (spanning trees of the cell grid, uniformly), placed bottom-left in
the wall grid; `sample_free_cell` draws uniformly from a mask."""

from __future__ import annotations

from collections import Counter, deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.mazes import maze_origin, random_maze, room_walls, sample_distinct_cells, sample_free_cell

GRID = 13
SIZES = (5, 7, 9, 11, 13)
N_UNIFORM = 3000  # size-5 mazes for the uniformity test
N_MIXED = 1000  # mazes cycling through SIZES

_maze = jax.jit(random_maze, static_argnums=1)
_mazes = jax.jit(jax.vmap(random_maze, in_axes=(0, None, 0)), static_argnums=1)


@pytest.fixture(scope="module")
def batch():
    """One compiled call: N_UNIFORM mazes of side 5, then N_MIXED cycling through every side."""
    keys = jax.random.split(jax.random.key(2024), N_UNIFORM + N_MIXED)
    sizes = np.array([5] * N_UNIFORM + [SIZES[i % len(SIZES)] for i in range(N_MIXED)], np.int32)
    return keys, sizes, np.asarray(_mazes(keys, GRID, jnp.asarray(sizes)))


def _free_graph(free):
    squares = list(zip(*np.nonzero(free), strict=True))
    edges = 0
    for r, c in squares:
        edges += int(r + 1 < free.shape[0] and free[r + 1, c]) + int(c + 1 < free.shape[1] and free[r, c + 1])
    return squares, edges


def _connected(free, squares):
    seen = {squares[0]}
    queue = deque([squares[0]])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < free.shape[0] and 0 <= n[1] < free.shape[1] and free[n] and n not in seen:
                seen.add(n)
                queue.append(n)
    return len(seen) == len(squares)


def test_every_maze_is_perfect_and_placed_bottom_left(batch):
    _, sizes, walls = batch
    assert walls.shape == (N_UNIFORM + N_MIXED, GRID, GRID) and walls.dtype == bool
    for m in SIZES:
        assert np.asarray(maze_origin(GRID, jnp.int32(m))).tolist() == [GRID - m, 0]
    for w, m in zip(walls[N_UNIFORM:], sizes[N_UNIFORM:], strict=True):
        top = GRID - m
        area = np.zeros_like(w)
        area[top:, :m] = True
        assert w[~area].all(), "outside the maze area must be wall"
        inner = w[top:, :m]
        assert inner[0].all() and inner[-1].all() and inner[:, 0].all() and inner[:, -1].all(), "border"
        n = (m - 1) // 2
        assert not inner[1::2, 1::2].any(), "every cell square is free"
        assert inner[0::2, 0::2].all(), "lattice corners are wall"
        free = ~w
        squares, edges = _free_graph(free)
        assert len(squares) == 2 * n * n - 1  # n^2 cells and n^2 - 1 passages
        assert _connected(free, squares)
        assert edges == len(squares) - 1  # connected with |E| = |V| - 1: a tree, one path between squares


def test_size_five_mazes_are_uniform_spanning_trees(batch):
    """A 2x2 cell grid has 4 spanning trees (drop one of the 4 passages); each should be drawn 1/4 of
    the time (Aldous-Broder). Chi-square with 3 degrees of freedom, p = 0.001 threshold."""
    _, _, walls = batch
    top = GRID - 5
    passages = [(top + 1, 2), (top + 2, 1), (top + 2, 3), (top + 3, 2)]  # between the 4 cells
    missing = Counter()
    for w in walls[:N_UNIFORM]:
        open_ = [not w[p] for p in passages]
        assert sum(open_) == 3
        missing[open_.index(False)] += 1
    counts = np.array([missing[i] for i in range(4)])
    expected = N_UNIFORM / 4
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.27, counts


def test_same_key_same_maze_and_batching_is_transparent(batch):
    keys, sizes, walls = batch
    for i in (0, N_UNIFORM + 1, N_UNIFORM + 4, len(sizes) - 1):
        once = np.asarray(_maze(keys[i], GRID, jnp.int32(sizes[i])))
        again = np.asarray(_maze(keys[i], GRID, jnp.int32(sizes[i])))
        np.testing.assert_array_equal(once, again)
        np.testing.assert_array_equal(once, walls[i])


def test_different_keys_give_different_mazes(batch):
    _, sizes, walls = batch
    for m in (9, 11, 13):
        chosen = walls[N_UNIFORM:][sizes[N_UNIFORM:] == m]
        distinct = {w.tobytes() for w in chosen}
        assert len(distinct) >= 0.95 * len(chosen)
    # Side 7 has 192 spanning trees: 200 draws still show plenty of them.
    chosen = walls[N_UNIFORM:][sizes[N_UNIFORM:] == 7]
    assert len({w.tobytes() for w in chosen}) > 60


_samples = jax.jit(jax.vmap(sample_free_cell, in_axes=(0, None)))


def test_sample_free_cell_is_uniform_over_the_mask():
    mask = np.zeros((4, 6), bool)
    allowed = [(0, 0), (1, 5), (2, 2), (3, 0), (3, 5)]
    for rc in allowed:
        mask[rc] = True
    cells = np.asarray(_samples(jax.random.split(jax.random.key(5), 5000), jnp.asarray(mask)))
    assert cells.dtype == np.int32 and cells.shape == (5000, 2)
    counts = Counter(map(tuple, cells.tolist()))
    assert set(counts) == set(allowed)
    expected = 5000 / len(allowed)
    chi2 = sum((counts[rc] - expected) ** 2 / expected for rc in allowed)
    assert chi2 < 18.47  # 4 degrees of freedom, p = 0.001


def test_sample_free_cell_with_one_square():
    mask = np.zeros((4, 6), bool)
    mask[2, 3] = True
    cells = np.asarray(_samples(jax.random.split(jax.random.key(0), 5000), jnp.asarray(mask)))  # same shape: no recompile
    assert (cells == [2, 3]).all()


def test_room_walls_border_an_open_interior():
    walls = np.asarray(room_walls(3, 5))
    assert walls.shape == (5, 7)
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert not walls[1:-1, 1:-1].any()


def test_distinct_cells_are_distinct_allowed_and_the_sequential_draws():
    allowed = ~np.asarray(room_walls(2))  # 4 free squares
    for seed in range(20):
        keys = jax.random.split(jax.random.key(seed), 4)
        cells = np.asarray(sample_distinct_cells(keys, jnp.asarray(allowed)))
        assert len({tuple(c) for c in cells}) == 4 and allowed[cells[:, 0], cells[:, 1]].all()
        # Each draw is sample_free_cell's on the squares still free at its turn.
        left = allowed.copy()
        for k, cell in zip(keys, cells):
            np.testing.assert_array_equal(np.asarray(sample_free_cell(k, jnp.asarray(left))), cell)
            left[cell[0], cell[1]] = False
