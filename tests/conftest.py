"""Shared fixtures: hand-drawn gridworld levels, their tabular view as NumPy arrays, and brute-force
ground truth (every deterministic stationary policy evaluated in float64).

Helpers are exposed as fixtures (test folders are not packages, so they cannot be imported):

- ``draw_level(rows, ...) -> (spec, level, cells)`` builds a `GridSpec` and a `Level` from ASCII art;
- ``tabular_np(spec, level) -> TabularNP`` tabularizes (jitted once per spec) and returns NumPy arrays;
- ``brute_force`` is a namespace with ``reachable``, ``policies`` and ``values``.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import deque
from types import SimpleNamespace
from typing import NamedTuple

# `make test` runs one pytest-xdist worker per core. On a GPU, each worker's JAX would otherwise reserve
# most of the device's memory for itself at its first computation, and the second worker would fail.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.levels.grid import KIND_INDEX, GridSpec, Level
from mesascope.levels.tabular import tabularize
from mesascope.programs import clear_loaded

@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every loaded XLA:CPU executable keeps memory mappings; one process running the whole suite collects
    enough of them to reach the kernel's `vm.max_map_count` (65,530 by default), and the next program it
    loads from the persistent compilation cache then crashes the process. Later modules reload what they
    need from that cache (and `mesascope.programs.cached_jit`'s saved programs).
    """
    yield
    jax.clear_caches()
    clear_loaded()


# ASCII legend for `draw_level`. Keys and chests are placed first among the objects so that they are
# the tracked slots (their consumed bit is part of the tabular state).
LEGEND = {
    "K": "key",
    "H": "chest",
    "C": "cheese",
    "O": "coin",
    "L": "lava",
    "R": "door_red",
    "G": "door_green",
}
_TRACK_FIRST = ("key", "chest")


def _draw_level(
    rows: list[str] | tuple[str, ...],
    *,
    regions: dict[str, list[str] | tuple[str, ...]] | None = None,
    n_tracked: int | None = None,
    max_inventory: int = 0,
    kinds: tuple[str, ...] | None = None,
    view: str = "full",
    gamma: float = 0.9,
    empty_slots: int = 0,
) -> tuple[GridSpec, Level, dict[str, list[tuple[int, int]]]]:
    """A level from ASCII art: ``#`` wall, ``.`` floor, ``S`` start, letters of `LEGEND` objects.

    `regions` maps a region name to ASCII art of the same size in which ``x`` marks region squares.
    Returns the spec, the level and ``cells``: every character's (row, col) squares.
    """
    h, w = len(rows), len(rows[0])
    assert all(len(r) == w for r in rows), "ragged level drawing"
    cells: dict[str, list[tuple[int, int]]] = {}
    for r, line in enumerate(rows):
        for c, ch in enumerate(line):
            cells.setdefault(ch, []).append((r, c))
    assert len(cells.get("S", [])) == 1, "exactly one start square"
    objects = [(LEGEND[ch], rc) for ch in LEGEND for rc in cells.get(ch, [])]
    objects.sort(key=lambda o: (0 if o[0] in _TRACK_FIRST else 1))
    if n_tracked is None:
        n_tracked = sum(k in _TRACK_FIRST for k, _ in objects)
    region_names = tuple(regions or {})
    region_masks = np.zeros((len(region_names), h, w), bool)
    for i, name in enumerate(region_names):
        art = regions[name]
        assert len(art) == h and all(len(line) == w for line in art)
        region_masks[i] = np.array([[ch == "x" for ch in line] for line in art])
    n = len(objects) + empty_slots
    if kinds is None:
        kinds = tuple(dict.fromkeys(k for k, _ in objects)) or ("cheese",)
    spec = GridSpec(
        height=h,
        width=w,
        n_objects=n,
        n_tracked=n_tracked,
        max_inventory=max_inventory,
        regions=region_names,
        kinds=kinds,
        view=view,
        gamma=gamma,
    )
    kind = [KIND_INDEX[k] for k, _ in objects] + [0] * empty_slots
    pos = [rc for _, rc in objects] + [(0, 0)] * empty_slots
    level = Level(
        walls=jnp.asarray(np.array([[ch == "#" for ch in line] for line in rows])),
        obj_kind=jnp.asarray(np.array(kind, np.int32).reshape(n)),
        obj_pos=jnp.asarray(np.array(pos, np.int32).reshape(n, 2)),
        start=jnp.asarray(np.array(cells["S"][0], np.int32)),
        regions=jnp.asarray(region_masks),
    )
    return spec, level, cells


class TabularNP(NamedTuple):
    next_state: np.ndarray  # int [S, A]
    features: np.ndarray  # float64 [S, A, K]
    start: int
    terminal: np.ndarray  # bool [S]


@functools.lru_cache(maxsize=None)
def _tabularize_fn(spec: GridSpec):
    return jax.jit(functools.partial(tabularize, spec))


def _tabular_np(spec: GridSpec, level: Level) -> TabularNP:
    mdp = _tabularize_fn(spec)(level)
    return TabularNP(
        next_state=np.asarray(mdp.next_state),
        features=np.asarray(mdp.features, np.float64),
        start=int(mdp.start),
        terminal=np.asarray(mdp.terminal),
    )


def reachable(next_state: np.ndarray, start: int) -> np.ndarray:
    """Sorted indices of every state reachable from `start` (BFS over all actions)."""
    seen = {int(start)}
    queue = deque([int(start)])
    while queue:
        s = queue.popleft()
        for t in next_state[s]:
            t = int(t)
            if t not in seen:
                seen.add(t)
                queue.append(t)
    return np.array(sorted(seen))


def enumerate_policies(
    next_state: np.ndarray, outcomes: np.ndarray, states: np.ndarray, limit: int = 1 << 18
) -> np.ndarray:
    """Every deterministic stationary policy on `states`, as int `[P, n]` global action indices.

    Actions with the same successor and the same `outcomes[s, a]` (features, or stacked rewards) are
    interchangeable for every reward that is a function of those outcomes, so one representative each
    is kept: this is still every *distinct* policy, and it keeps the enumeration small.
    """
    choices = []
    for s in states:
        reps: dict[tuple, int] = {}
        for a in range(next_state.shape[1]):
            sig = (int(next_state[s, a]), tuple(np.round(np.atleast_1d(outcomes[s, a]), 9)))
            reps.setdefault(sig, a)
        choices.append(sorted(reps.values()))
    total = int(np.prod([len(c) for c in choices]))
    assert total <= limit, f"{total} policies is too many for brute force"
    return np.array(list(itertools.product(*choices)), np.int64).reshape(total, len(states))


def evaluate_policies(
    next_state: np.ndarray,
    reward: np.ndarray,
    gamma: float,
    states: np.ndarray,
    policies: np.ndarray,
    chunk: int = 8192,
) -> np.ndarray:
    """Exact float64 values `[P, n]` of deterministic policies on the (closed) set `states`."""
    local = {int(s): i for i, s in enumerate(states)}
    n = len(states)
    nxt_local = np.array([[local[int(t)] for t in next_state[s]] for s in states])  # [n, A]
    rew = np.asarray(reward, np.float64)[states]  # [n, A]
    out = np.empty(policies.shape, np.float64)
    eye = np.eye(n)
    rows = np.arange(n)
    for lo in range(0, len(policies), chunk):
        pol = policies[lo : lo + chunk]
        c = len(pol)
        t = np.zeros((c, n, n))
        t[np.arange(c)[:, None], rows[None, :], nxt_local[rows[None, :], pol]] = 1.0
        r = rew[rows[None, :], pol]
        out[lo : lo + c] = np.linalg.solve(eye[None] - gamma * t, r[..., None])[..., 0]
    return out


@pytest.fixture(scope="session")
def draw_level():
    return _draw_level


@pytest.fixture(scope="session")
def tabular_np():
    return _tabular_np


@pytest.fixture(scope="session")
def brute_force():
    return SimpleNamespace(reachable=reachable, policies=enumerate_policies, values=evaluate_policies)


KEYS_CHESTS_ROWS = (
    "S.K#.H",
    ".#.#..",
    ".#K...",
    ".L..#.",
    ".##.#.",
    "H...#C",
)
"""Two keys, two chests (tracked), lava and a cheese (untracked): 36 * 2**4 * 3 + 1 = 1729 states with
`max_inventory=2`, more than `DENSE_MAX_STATES`, so the solvers take their iterative paths."""


@pytest.fixture(scope="session")
def keys_chests_level():
    """`(spec, level, cells)` of the keys-and-chests level (n_tracked=4, max_inventory=2, gamma 0.95)."""
    return _draw_level(KEYS_CHESTS_ROWS, max_inventory=2, gamma=0.95, kinds=("key", "chest", "cheese", "lava"))


@pytest.fixture(scope="session")
def dp_jit():
    """The solvers jitted once per array shape (gamma, atol and rtol are traced, not static, so one
    compilation serves every discount). A new `jax.jit` wrapper is needed after monkeypatching `dp`."""
    from mesascope.solve import dp

    return SimpleNamespace(
        value_iteration=jax.jit(dp.value_iteration, static_argnames=("minimize", "tol", "max_iters")),
        policy_evaluation=jax.jit(dp.policy_evaluation, static_argnames=("tol", "max_iters")),
        policy_evaluation_dense=jax.jit(dp.policy_evaluation_dense),
        worst_case_over_optimal=jax.jit(dp.worst_case_over_optimal, static_argnames=("best_case",)),
    )


CHEESE_BATCH = 32
"""Every cheese-corner test samples batches of this size: the level sampler compiles once per size."""


@functools.lru_cache(maxsize=None)
def _tabularize_batch_fn(spec: GridSpec):
    return jax.jit(jax.vmap(functools.partial(tabularize, spec)))


@pytest.fixture(scope="session")
def cheese_corner_batches():
    """`{"spec", "train", "deploy", "train_mdp", "deploy_mdp"}`: 32 seeded levels of each split of
    cheese-corner-v0 (keys 0 and 1) and their tabular views (jax arrays, leading `[32]` axis)."""
    from mesascope.scenarios import get_scenario

    sc = get_scenario("cheese-corner-v0")
    out = {"scenario": sc, "spec": sc.spec}
    for split, seed in (("train", 0), ("deploy", 1)):
        levels = sc.sample_levels(jax.random.key(seed), CHEESE_BATCH, split)
        out[split] = levels
        out[f"{split}_mdp"] = _tabularize_batch_fn(sc.spec)(levels)
    return out


@pytest.fixture
def reproduced(tmp_path):
    """``reproduced(scenario_id, **params) -> audit``: run the scenario's fast reproduction configuration
    with those parameter values (`mesascope reproduce`; its `fast` one without), assert its expected finding
    held (showing every failed check otherwise) and return its audit.json."""
    import json

    from mesascope.experiments.reproduce import configurations, reproduce_one

    def run(scenario_id: str, **params) -> dict:
        specs = [s for s in configurations(scenario_id) if s is not None and dict(s.params) == params]
        assert specs, f"{scenario_id} has no fast reproduction configuration with {params}"
        row = reproduce_one(scenario_id, tmp_path, spec=specs[0])
        assert row.error is None, row.error
        assert row.reproduced, [c for c in row.checks if not c["holds"]]
        return json.loads((tmp_path / row.run_dir.split("/")[-1] / "audit.json").read_text())

    return run


@functools.lru_cache(maxsize=None)
def _split_batches(scenario_id: str, n: int):
    from mesascope.measures.scores import tabularize_levels
    from mesascope.scenarios import get_scenario

    sc = get_scenario(scenario_id)
    out = {}
    for split, seed in (("train", 0), ("deploy", 1)):
        levels = sc.sample_levels(jax.random.key(seed), n, split)
        out[split] = (levels, tabularize_levels(sc.spec, levels))
    return sc, out


@pytest.fixture(scope="session")
def split_batches():
    """``split_batches(scenario_id, n) -> (scenario, {split: (levels, tab)})``: `n` seeded levels of each
    split (train from key 0, deploy from key 1) and their tabular views, built once per session."""
    return _split_batches
