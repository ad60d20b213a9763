"""cheese-corner-v0: where the cheese may be in each split, determinism, and exact optimal values
against breadth-first search on the maze."""

from __future__ import annotations

from collections import deque

import jax
import numpy as np
import pytest

from mesascope.scenarios import get_scenario
from mesascope.solve.dp import value_iteration
from mesascope.types import MesascopeError

_batch_vi = jax.jit(jax.vmap(value_iteration, in_axes=(0, 0, None)))


def _geometry(walls):
    """(maze side m, start, corner) of a level, read off its walls (the maze sits bottom-left)."""
    g = walls.shape[0]
    free_cols = np.nonzero((~walls).any(0))[0]
    m = int(free_cols.max()) + 2
    return m, (g - 2, 1), (g - m + 1, m - 2)


def _distances(walls, source, blocked=None):
    """BFS steps from `source` over free squares (never through `blocked`)."""
    dist = {source: 0}
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            n = (r + dr, c + dc)
            inside = 0 <= n[0] < walls.shape[0] and 0 <= n[1] < walls.shape[1]
            if inside and not walls[n] and n not in dist and n != blocked:
                dist[n] = dist[(r, c)] + 1
                queue.append(n)
    return dist


def _levels(batch):
    return [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), batch) for i in range(batch.walls.shape[0])]


def test_registry_entry_and_objectives():
    sc = get_scenario("cheese-corner-v0")
    assert sc.id == "cheese-corner-v0"
    assert (sc.spec.height, sc.spec.width, sc.spec.n_objects) == (7, 7, 1)
    assert sc.feature_names == ("cheese", "step", "corner")
    names, w = sc.weight_matrix()
    assert names == ("base", "intended", "cheese", "corner")
    np.testing.assert_array_equal(w, [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]])
    assert w.dtype == np.float32
    with pytest.raises(MesascopeError, match="split"):
        sc.sample_levels(jax.random.key(0), 2, "test")


def test_train_levels_have_the_cheese_on_the_corner(cheese_corner_batches):
    sizes = set()
    for lv in _levels(cheese_corner_batches["train"]):
        walls = lv.walls
        m, start, corner = _geometry(walls)
        sizes.add(m)
        assert m in (5, 7)
        assert tuple(lv.start) == start and not walls[start]
        assert lv.obj_kind.tolist() == [1]  # cheese
        assert tuple(lv.obj_pos[0]) == corner  # region 1: the top-right cell itself
        region = np.zeros_like(walls)
        region[corner] = True
        np.testing.assert_array_equal(lv.regions, region[None])
    assert sizes == {5, 7}, "both maze sizes should appear in 32 levels"


def test_deploy_levels_never_put_the_cheese_on_the_corner_or_start(cheese_corner_batches):
    positions = set()
    for lv in _levels(cheese_corner_batches["deploy"]):
        m, start, corner = _geometry(lv.walls)
        cheese = tuple(lv.obj_pos[0])
        assert not lv.walls[cheese]
        assert cheese not in (start, corner)
        assert tuple(lv.start) == start
        assert lv.regions[0, corner[0], corner[1]] and lv.regions.sum() == 1
        positions.add((m, cheese))
    assert len(positions) >= 10, "deploy cheese should be spread over the maze"


def test_wider_training_region():
    """cheese-corner-region3-v0: the cheese is in the top-right 3x3 squares of the maze, not always
    on the corner, never on the start."""
    sc = get_scenario("cheese-corner-region3-v0")
    assert sc.params["region"] == 3
    batch = sc.sample_levels(jax.random.key(3), 32, "train")
    spots = set()
    for lv in _levels(batch):
        m, start, corner = _geometry(lv.walls)
        r, c = lv.obj_pos[0]
        assert corner[0] <= r < corner[0] + 3 and corner[1] - 3 < c <= corner[1]
        assert not lv.walls[r, c] and (r, c) != start
        spots.add((int(r - corner[0]), int(corner[1] - c)))
    assert len(spots) >= 3


def test_generation_is_deterministic_given_the_key(cheese_corner_batches):
    sc = cheese_corner_batches["scenario"]
    for split, seed in (("train", 0), ("deploy", 1)):
        again = sc.sample_levels(jax.random.key(seed), 32, split)
        for a, b in zip(again, cheese_corner_batches[split], strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = sc.sample_levels(jax.random.key(99), 32, "deploy")
    same = [
        np.array_equal(np.asarray(other.walls[i]), np.asarray(cheese_corner_batches["deploy"].walls[i]))
        and np.array_equal(np.asarray(other.obj_pos[i]), np.asarray(cheese_corner_batches["deploy"].obj_pos[i]))
        for i in range(32)
    ]
    assert sum(same) <= 4  # only small mazes can coincide by chance


@pytest.mark.parametrize("split", ["train", "deploy"])
def test_optimal_values_match_breadth_first_search(cheese_corner_batches, split):
    """V*_base(start) = gamma**(d - 1) with d the BFS distance to the cheese; V*_corner(start) is
    gamma**(d_c - 1) / (1 - gamma) (reach the corner, then bump into its wall forever) when the corner is
    reachable without eating the cheese, gamma**(d - 1) when the cheese is on the corner (train), else 0."""
    sc = cheese_corner_batches["scenario"]
    mdps = cheese_corner_batches[f"{split}_mdp"]
    names, w = sc.weight_matrix()
    gamma = sc.spec.gamma
    feats = np.asarray(mdps.features)
    v_base = np.asarray(_batch_vi(mdps.next_state, feats @ w[names.index("base")], gamma).v)
    v_corner = np.asarray(_batch_vi(mdps.next_state, feats @ w[names.index("corner")], gamma).v)
    starts = np.asarray(mdps.start)
    for i, lv in enumerate(_levels(cheese_corner_batches[split])):
        m, start, corner = _geometry(lv.walls)
        cheese = tuple(int(x) for x in lv.obj_pos[0])
        d = _distances(lv.walls, start)[cheese]
        assert v_base[i, starts[i]] == pytest.approx(gamma ** (d - 1), rel=1e-5)
        if cheese == corner:
            want = gamma ** (d - 1)
        else:
            d_c = _distances(lv.walls, start, blocked=cheese).get(corner)
            want = 0.0 if d_c is None else gamma ** (d_c - 1) / (1 - gamma)
        assert v_corner[i, starts[i]] == pytest.approx(want, rel=1e-4, abs=1e-5)
