"""Conformance checks every scenario must pass (in the spirit of Gymnasium's `utils/env_checker.py`).

A scenario is only as trustworthy as its level generator: if the same key gives different levels the
runs are not reproducible; if the cheese can sit on a wall the "exact" values are values of a broken
MDP; if the tabular view drifts from the simulator the solver audits a different game than the one
the agent was trained in. `check_scenario` runs every check on seeded batches of both splits and
returns a report instead of stopping at the first failure.

========================================  ==============================================================
check                                     passes when
========================================  ==============================================================
``same_key_same_levels/<split>``          one key gives identical levels twice
``different_keys_different_levels/<s>``   two keys give different batches, and a batch is not all one level
``valid_levels/<split>``                  shapes match the spec; the start and every object are on free
                                          squares inside the grid; no two objects share a square; the
                                          agent does not start on an object; object kinds are in
                                          `spec.kinds`
``reachable_base_reward/<split>``         on every level, a transition with positive base reward is
                                          reachable from the start state (BFS on the tabular view)
``tabular_consistent/<split>``            on random rollouts, `decode(encode(s)) == s` and the tabular
                                          successor and features equal the simulator's
``objectives_use_known_features``         every objective names only features of the levels, has a
                                          nonzero weight, and no two objectives share a name
``candidate_goals_non_empty``             the scenario declares at least one candidate goal
``gymnasium_env_checker/<split>``         `gymnasium.utils.env_checker.check_env` raises nothing and
                                          warns nothing on the `ScenarioEnv` adapter
========================================  ==============================================================

Example:
    >>> report = check_scenario("cheese-corner-v0")
    >>> report.passed
    True
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import OBJECT_KINDS, GridSpec, Level, State, reset, step
from mesascope.levels.tabular import TabularMDP, decode, encode
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios.base import SPLITS, Scenario, get_scenario
from mesascope.types import MesascopeError

__all__ = ["Check", "ConformanceReport", "check_scenario", "check_scenarios"]

ROLLOUT_STEPS = 64
"""Steps of each random rollout in the tabular-consistency check (at most `spec.max_steps`)."""


@dataclass(frozen=True)
class Check:
    """The outcome of one conformance check.

    Attributes:
        name: e.g. "valid_levels/train".
        passed: Whether the scenario conforms.
        message: What was checked, or what went wrong and on which levels.
    """

    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class ConformanceReport:
    """Every check `check_scenario` ran on one scenario, in order.

    Attributes:
        scenario_id: The scenario checked.
        checks: One `Check` per check (and split).
    """

    scenario_id: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """All checks passed."""
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def check(self, name: str) -> Check:
        """The check called `name` (e.g. "valid_levels/deploy")."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def raise_for_failures(self) -> None:
        """Raise `MesascopeError` listing every failed check (no-op when all passed)."""
        if self.failures:
            lines = "\n".join(f"  - {c.name}: {c.message}" for c in self.failures)
            raise MesascopeError(
                f"scenario {self.scenario_id!r} failed {len(self.failures)} conformance check(s):\n{lines}"
            )

    def __str__(self) -> str:
        width = max(len(c.name) for c in self.checks) if self.checks else 0
        rows = [f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.message}" for c in self.checks]
        return f"conformance of {self.scenario_id!r}:\n" + "\n".join(rows)


# ------------------------------------------------------------------------------------------ helpers


def _guard(name: str, fn: Callable[[], tuple[bool, str]]) -> Check:
    """Run one check; an exception is a failure whose message names it."""
    try:
        passed, message = fn()
    except Exception as e:  # noqa: BLE001 - a crashing scenario fails the check, it does not stop the report
        passed, message = False, f"raised {type(e).__name__}: {e}"
    return Check(name, bool(passed), message)


def _numpy(levels: Level) -> Level:
    return Level(*(np.asarray(x) for x in levels))


def _same(a: Level, b: Level) -> bool:
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(_numpy(a), _numpy(b)))


def _level_index(levels: Level, i: int) -> Level:
    return Level(*(x[i] for x in levels))


def _trace(scenario: Scenario, split: str, n: int) -> tuple[str, list[np.ndarray]]:
    """A fresh trace of the batched generator: its program text and its constants."""
    keys = jax.random.split(jax.random.key(0), n)
    closed = jax.make_jaxpr(jax.vmap(lambda k: scenario.make_level(k, split)))(keys)
    return str(closed.jaxpr), [np.asarray(c) for c in closed.consts]


def _describe(bad: np.ndarray, what: str) -> str:
    idx = np.flatnonzero(bad)
    shown = ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")
    return f"{len(idx)} of {len(bad)} levels {what} (levels {shown})"


# ------------------------------------------------------------------------------------------ checks


def _check_valid(spec: GridSpec, levels: Level) -> tuple[bool, str]:
    lv = _numpy(levels)
    n = lv.walls.shape[0]
    h, w, k, r = spec.height, spec.width, spec.n_objects, len(spec.regions)
    expected = {
        "walls": (n, h, w),
        "obj_kind": (n, k),
        "obj_pos": (n, k, 2),
        "start": (n, 2),
        "regions": (n, r, h, w),
    }
    for field, shape in expected.items():
        got = getattr(lv, field).shape
        if got != shape:
            return False, f"level field {field!r} has shape {got[1:]}; the spec implies {shape[1:]}"
    for field in ("walls", "regions"):
        if getattr(lv, field).dtype != bool:
            return False, f"level field {field!r} must be bool, got {getattr(lv, field).dtype}"
    for field in ("obj_kind", "obj_pos", "start"):
        if not np.issubdtype(getattr(lv, field).dtype, np.integer):
            return False, f"level field {field!r} must be an integer array, got {getattr(lv, field).dtype}"

    problems = []
    kind = lv.obj_kind
    if ((kind < 0) | (kind >= len(OBJECT_KINDS))).any():
        return False, f"object kinds must be indices into OBJECT_KINDS (0..{len(OBJECT_KINDS) - 1})"
    allowed = np.zeros(len(OBJECT_KINDS), bool)
    allowed[[OBJECT_KINDS.index(x) for x in spec.kinds]] = True
    allowed[0] = True
    foreign = ~allowed[kind]
    if foreign.any():
        names = sorted({OBJECT_KINDS[x] for x in kind[foreign]})
        what = f"hold kinds {names} missing from spec.kinds (invisible to observations and features)"
        problems.append(_describe(foreign.any(-1), what))

    present = kind > 0
    rows, cols = lv.obj_pos[..., 0], lv.obj_pos[..., 1]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    outside = present & ~inside
    if outside.any():
        problems.append(_describe(outside.any(-1), "have an object outside the grid"))
    on_wall = present & inside & lv.walls[np.arange(n)[:, None], np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)]
    if on_wall.any():
        problems.append(_describe(on_wall.any(-1), "have an object on a wall"))
    same = (lv.obj_pos[:, :, None, :] == lv.obj_pos[:, None, :, :]).all(-1)
    pair = present[:, :, None] & present[:, None, :] & ~np.eye(k, dtype=bool)[None]
    if (same & pair).any():
        problems.append(_describe((same & pair).any((-1, -2)), "have two objects on one square"))

    sr, sc = lv.start[:, 0], lv.start[:, 1]
    start_inside = (sr >= 0) & (sr < h) & (sc >= 0) & (sc < w)
    if (~start_inside).any():
        problems.append(_describe(~start_inside, "start the agent outside the grid"))
    start_wall = start_inside & lv.walls[np.arange(n), np.clip(sr, 0, h - 1), np.clip(sc, 0, w - 1)]
    if start_wall.any():
        problems.append(_describe(start_wall, "start the agent on a wall"))
    start_obj = (present & (lv.obj_pos == lv.start[:, None, :]).all(-1)).any(-1)
    if start_obj.any():
        problems.append(_describe(start_obj, "start the agent on an object"))
    if problems:
        return False, "; ".join(problems)
    return True, f"{n} levels: shapes match the spec, start and objects on distinct free squares"


def _reachable(tab: TabularMDP) -> np.ndarray:
    """bool `[L, S]`: states reachable from each level's start state (breadth-first)."""
    nxt = np.asarray(tab.next_state)
    starts = np.asarray(tab.start)
    out = np.zeros(nxt.shape[:2], bool)
    for i in range(nxt.shape[0]):
        seen = out[i]
        seen[starts[i]] = True
        frontier = np.array([starts[i]])
        while frontier.size:
            succ = np.unique(nxt[i, frontier].ravel())
            frontier = succ[~seen[succ]]
            seen[frontier] = True
    return out


def _check_reachable(scenario: Scenario, tab: TabularMDP) -> tuple[bool, str]:
    w = scenario.base_objective.vector(scenario.feature_names)
    reward = np.asarray(tab.features) @ w  # [L, S, A]
    reach = _reachable(tab)
    ok = ((reward > 0) & reach[..., None]).any((-1, -2))
    if not ok.all():
        return False, _describe(~ok, "have no positive base reward reachable from the start state")
    return True, (
        f"every level has a positive base-reward transition reachable from the start "
        f"(at least {reach.sum(-1).min()} states reachable per level)"
    )


@functools.lru_cache(maxsize=None)
def _consistency_fn(spec: GridSpec, n_steps: int) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
    """Jitted: random rollouts on a batch of levels, comparing the simulator with its tabular view."""

    def one(level: Level, next_state: jax.Array, features: jax.Array, key: jax.Array):
        actions = jax.random.randint(key, (n_steps,), 0, spec.n_actions)

        def body(state: State, a: jax.Array):
            idx = encode(spec, state)
            back = decode(spec, idx)
            same_state = (
                (back.pos == state.pos).all()
                & (back.consumed == state.consumed).all()
                & (back.inventory == state.inventory)
                & (back.done == state.done)
            )
            round_trip = (encode(spec, back) == idx) & (state.done | same_state)
            nxt, phi = step(spec, level, state, a)
            same_next = next_state[idx, a] == encode(spec, nxt)
            same_phi = jnp.allclose(features[idx, a], phi, atol=1e-6)
            return nxt, (round_trip, same_next, same_phi)

        _, oks = jax.lax.scan(body, reset(level), actions)
        return oks

    return jax.jit(jax.vmap(one))


def _check_tabular(spec: GridSpec, levels: Level, tab: TabularMDP, key: jax.Array) -> tuple[bool, str]:
    n_steps = max(1, min(ROLLOUT_STEPS, spec.max_steps))
    n = levels.walls.shape[0]
    fn = _consistency_fn(spec, n_steps)
    oks = fn(levels, tab.next_state, tab.features, jax.random.split(key, n))
    round_trip, same_next, same_phi = (np.asarray(x) for x in oks)
    problems = []
    if not round_trip.all():
        problems.append(
            _describe(~round_trip.all(-1), "visit a state that encode/decode does not round-trip "
                      "(an object consumed without ending the episode needs a tracked slot: raise n_tracked "
                      "or move it to the first slots)")
        )
    if not same_next.all():
        problems.append(_describe(~same_next.all(-1), "have a tabular successor that differs from the simulator's"))
    if not same_phi.all():
        problems.append(_describe(~same_phi.all(-1), "have tabular features that differ from the simulator's"))
    if problems:
        return False, "; ".join(problems)
    return True, f"{n} random rollouts of {n_steps} steps agree with the tabular view"


EDIT_ROUNDS = 24
"""Successive edits the conformance suite applies to every sampled training level (`Scenario.mutate`)."""


def _check_edits(scenario: Scenario, levels: Level, key: jax.Array) -> tuple[bool, str]:
    """Every level stays valid and solvable after each of `EDIT_ROUNDS` successive edits (ACCEL's)."""
    edit = jax.jit(jax.vmap(scenario.mutate))
    changed = np.zeros(levels.walls.shape[0], bool)
    original = _numpy(levels)
    for k in jax.random.split(key, EDIT_ROUNDS):
        levels = edit(jax.random.split(k, levels.walls.shape[0]), levels)
        for check in (lambda: _check_valid(scenario.spec, levels),
                      lambda: _check_reachable(scenario, tabularize_levels(scenario.spec, levels))):
            ok, why = check()
            if not ok:
                return False, f"after edits: {why}"
    edited = _numpy(levels)
    for field in ("walls", "obj_pos", "start"):
        a, b = getattr(original, field), getattr(edited, field)
        changed |= (a != b).reshape(a.shape[0], -1).any(-1)
    if not changed.any():
        return False, f"{EDIT_ROUNDS} rounds of edits changed no level (does mutate ignore its key?)"
    return True, f"{EDIT_ROUNDS} rounds of edits keep every level valid and solvable ({changed.sum()} levels changed)"


def _check_objectives(scenario: Scenario) -> tuple[bool, str]:
    names = ["base", "intended"] + [g.name for g in scenario.candidate_goals]
    dupes = sorted({x for x in names if names.count(x) > 1})
    problems = []
    if dupes:
        problems.append(f"objective name(s) {dupes} are used twice (candidate goals may not be called 'base' or 'intended')")
    objectives = [scenario.base_objective, scenario.intended_objective, *scenario.candidate_goals]
    for label, obj in zip(names, objectives):
        try:
            w = obj.vector(scenario.feature_names)
        except MesascopeError as e:
            problems.append(str(e))
            continue
        if not np.isfinite(w).all():
            problems.append(f"objective {label!r} has non-finite weights")
        elif not np.any(w):
            problems.append(f"objective {label!r} has no nonzero weight")
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(objectives)} objectives over features {', '.join(scenario.feature_names)}"


def _plain(text: str) -> str:
    """`text` without terminal colour codes (Gymnasium colours its warnings)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _check_candidates(scenario: Scenario) -> tuple[bool, str]:
    goals = scenario.candidate_goals
    if not goals:
        return False, "the scenario declares no candidate goals, so behavioral objectives cannot be inferred"
    return True, f"{len(goals)} candidate goal(s): {', '.join(g.name for g in goals)}"


def _check_gymnasium(scenario: Scenario, split: str) -> tuple[bool, str]:
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    from mesascope.adapters.gymnasium_env import make_env_spec

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(make_env_spec(scenario, split=split), disable_env_checker=True)
        try:
            check_env(env.unwrapped)
        finally:
            env.close()
    complaints = [_plain(str(w.message)) for w in caught if "WARN" in str(w.message)]
    if complaints:
        return False, "the env checker warned: " + " | ".join(complaints)
    return True, "gymnasium's check_env passed without warnings"


# ------------------------------------------------------------------------------------------ entry point


def check_scenario(
    scenario: str | Scenario,
    *,
    n_levels: int = 32,
    key: jax.Array | None = None,
    strict: bool = False,
    gymnasium_check: bool = True,
    splits: Sequence[str] = SPLITS,
) -> ConformanceReport:
    """Run every conformance check on a scenario (see the module docstring for the list).

    Args:
        scenario: A registered id or a `Scenario`.
        n_levels: Levels sampled per split and key (at least 2). The default equals the Gymnasium
            adapter's `LEVEL_BLOCK`, so the checker and the adapter share one compiled generator.
        key: PRNG key for the samples (default `jax.random.key(0)`).
        strict: Raise instead of returning a failing report.
        gymnasium_check: Also run Gymnasium's env checker on the adapter (the slowest check).
        splits: The splits to check (default both); each compiles the generator once.

    Returns:
        A `ConformanceReport` with one `Check` per check and split.

    Raises:
        MesascopeError: if `strict` and any check failed, listing every failure.
    """
    if n_levels < 2:
        raise MesascopeError(f"n_levels must be at least 2 to test that levels vary; got {n_levels}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise MesascopeError(f"unknown or no split(s) {list(unknown)}; choose among: {', '.join(SPLITS)}")
    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    key = jax.random.key(0) if key is None else key
    k_a, k_b, k_roll = jax.random.split(key, 3)
    spec = sc.spec
    checks: list[Check] = []

    @functools.cache
    def sample(k: int, split: str) -> Level:
        return sc.sample_levels((k_a, k_b)[k], n_levels, split)

    @functools.cache
    def tabular(split: str) -> TabularMDP:
        return tabularize_levels(spec, sample(0, split))

    def same_key(split: str) -> tuple[bool, str]:
        again = sc.sample_levels(k_a, n_levels, split)
        if not _same(sample(0, split), again):
            return False, "the same key gave different levels (is make_level using randomness outside its key?)"
        # The sampler is compiled once, so Python-side randomness (numpy, time, counters) would be frozen
        # into it and only differ between processes. Two fresh traces must therefore be identical too.
        first, second = (_trace(sc, split, n_levels) for _ in range(2))
        if first[0] != second[0] or len(first[1]) != len(second[1]) or not all(
            np.array_equal(a, b) for a, b in zip(first[1], second[1])
        ):
            return False, (
                "two traces of make_level differ: it draws randomness outside its key (numpy, random, time, "
                "a counter), so the same key gives different levels in another process"
            )
        return True, f"the same key gave the same {n_levels} levels, and make_level traces identically"

    def different_keys(split: str) -> tuple[bool, str]:
        a, b = sample(0, split), sample(1, split)
        if _same(a, b):
            return False, "two different keys gave identical levels (does make_level ignore its key?)"
        first = _level_index(_numpy(a), 0)
        if all(_same(first, _level_index(_numpy(a), i)) for i in range(1, n_levels)):
            return False, f"all {n_levels} levels of one batch are identical (does make_level ignore its key?)"
        return True, "different keys gave different levels"

    for split in splits:
        checks.append(_guard(f"same_key_same_levels/{split}", lambda s=split: same_key(s)))
        checks.append(_guard(f"different_keys_different_levels/{split}", lambda s=split: different_keys(s)))
    for split in splits:
        checks.append(_guard(f"valid_levels/{split}", lambda s=split: _check_valid(spec, sample(0, s))))
    for split in splits:
        checks.append(_guard(f"reachable_base_reward/{split}", lambda s=split: _check_reachable(sc, tabular(s))))
    for split, k in zip(splits, jax.random.split(k_roll, len(splits))):
        checks.append(
            _guard(f"tabular_consistent/{split}", lambda s=split, k=k: _check_tabular(spec, sample(0, s), tabular(s), k))
        )
    if sc.mutate is not None and "train" in splits:
        checks.append(_guard("edits_keep_levels_valid", lambda: _check_edits(sc, sample(0, "train"), k_roll)))
    checks.append(_guard("objectives_use_known_features", lambda: _check_objectives(sc)))
    checks.append(_guard("candidate_goals_non_empty", lambda: _check_candidates(sc)))
    if gymnasium_check:
        for split in splits:
            checks.append(_guard(f"gymnasium_env_checker/{split}", lambda s=split: _check_gymnasium(sc, s)))

    report = ConformanceReport(scenario_id=sc.id, checks=tuple(checks))
    if strict:
        report.raise_for_failures()
    return report


def check_scenarios(ids: Sequence[str], **kwargs: object) -> dict[str, ConformanceReport]:
    """`check_scenario` for several registered ids (keyword arguments as for `check_scenario`)."""
    return {sid: check_scenario(sid, **kwargs) for sid in ids}  # type: ignore[arg-type]
