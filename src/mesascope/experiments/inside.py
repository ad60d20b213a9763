"""`mesascope probe RUN_DIR`: which layers of a trained network encode the scenario's objects and goals.

For each seed's network and each split, every reachable, non-terminal state of `n_levels` audited levels
(the audit's own level sample, its first levels) is passed through the network and every layer's
activations are kept (`mesascope.systems.policy.layer_activations`). Linear probes
(`mesascope.measures.probes`) are fitted to two kinds of target, cross-validated across levels:

* `cell of <object>`: the grid cell an object of the level stands on (each object slot whose kind is the
  same on every probed level, and each region that is a single cell on every level, like the corner);
* `next action for <goal>`: the candidate goal's optimal actions at the state (exact `Q*`).

The results go to `RUN_DIR/inside/probes.json` and are printed as a table.

`mesascope steer RUN_DIR --layer L --object cheese --coef C` (`steer_run`) builds a goal vector: the mean,
over every live state of a set of deploy levels, of the layer's activations with the object minus those
on the same level and state with the object removed (Turner et al. 2023's "cheese vector"). It adds `coef`
times that vector to the layer and measures the effect exactly, on every state of the audit's deploy
levels: each candidate goal's first-reached probability and `J` of every objective (on informative levels),
unedited and steered. The vector is built on other deploy levels than those it is measured on.

With `--square R,C` it retargets instead: the vector is the mean difference the object makes when it is
moved to that square (levels with the object at the square minus the same levels without it), and the
measure is how often the square becomes the first goal reached: on every deploy level where the square is
a free square other than the start and the object, the exact probability that the agent enters the
square before reaching any candidate goal, unedited and steered, and the share of those levels where it
is above one half.

Only networks trained by mesascope's PPO have layers to steer. Probes also read the layers of a
stable-baselines3 actor-critic audited with `mesascope audit-policy` (torch forward hooks on the modules of
its action path, `mesascope.systems.outside.sb3_layer_activations`), and explicit
mesa-optimizers (`mesa-*` optimizers), whose objective is known: the ground-truth check of the probes.
A planner's "layers" at a state are what it computes there: `features` (what it perceives of each
action's cell, `psi(s, a)` flattened), `mesa reward` (its objective applied to them, one value per
action) and `planned q` (its soft `Q` after planning, one value per action). A probe that works should
decode the next optimal action of the goal the planner's read-off objective pursues from `planned q`.
Other runs are refused with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope.experiments.audit import AuditConfig
from mesascope.experiments.outside import audited_levels
from mesascope.experiments.run import load_run
from mesascope.experiments.train import get_trainer, load_networks
from mesascope.levels.grid import KIND_INDEX, OBJECT_KINDS, Level
from mesascope.levels.tabular import decode, observe_all
from mesascope.measures.distances import reachable_states
from mesascope.measures.goal_posterior import candidate_q_values
from mesascope.measures.probes import cross_validated_probe
from mesascope.measures.scores import (
    first_event_probabilities,
    first_reach_probabilities,
    informative_levels,
    score_levels,
    tabularize_levels,
)
from mesascope.systems.policy import layer_activations, layer_names, steered_action_probs
from mesascope.types import MesascopeError

__all__ = ["PROBE_SEED", "STEER_SEED", "check_network_run", "check_probe_run", "goal_vector", "probe_run", "probe_targets",
           "retarget_vector", "steer_file", "steer_run"]

PROBE_SEED = 15
"""Seeds the shuffled-target baseline (the level sample is the audit's, `AUDIT_SEED`)."""

STEER_SEED = 2023
"""Key of the deploy levels a goal vector is built on (not the audit's levels, which measure its effect)."""

TIE_TOL = 1e-6


def _goal_weights(scenario: Any) -> np.ndarray:
    """float `[G, K]`: each candidate goal's feature weights, in `candidate_goals` order."""
    return np.stack([goal.vector(scenario.feature_names) for goal in scenario.candidate_goals])


def _live(tab: Any) -> np.ndarray:
    """bool `[L, S]`: the probed states, reachable from the start and not terminal."""
    return np.asarray(jax.vmap(reachable_states)(tab)) & ~np.asarray(tab.terminal)


def probe_targets(scenario: Any, levels: Any, tab: Any, live: np.ndarray) -> dict[str, tuple[np.ndarray, bool]]:
    """Every probe target of a batch of levels, on its live states.

    Args:
        scenario: The scenario.
        levels: `Level` batch `[L, ...]`.
        tab: Its tabular views.
        live: bool `[L, S]`, the probed states (reachable, not terminal).

    Returns:
        `{name: (correct [N, C] bool, per_level)}` over the `N = live.sum()` probed states, in
        level-major order: which classes are correct at each state, and whether the target is constant
        over a level.
    """
    spec = scenario.spec
    n_cells = spec.height * spec.width
    level_of = np.nonzero(live)[0]
    out: dict[str, tuple[np.ndarray, bool]] = {}

    def cells(index: np.ndarray) -> np.ndarray:  # [L] cell indices -> [N, cells] one-hot on live states
        return np.eye(n_cells, dtype=bool)[index][level_of]

    kinds = np.asarray(levels.obj_kind)
    pos = np.asarray(levels.obj_pos)
    for k in range(kinds.shape[1]):
        if (kinds[:, k] == kinds[0, k]).all() and kinds[0, k] >= 0:
            name = OBJECT_KINDS[kinds[0, k]]
            label = f"cell of {name}" if (kinds[0] == kinds[0, k]).sum() == 1 else f"cell of {name} {k + 1}"
            out[label] = (cells(pos[:, k, 0] * spec.width + pos[:, k, 1]), True)
    regions = np.asarray(levels.regions)
    for r, name in enumerate(spec.regions):
        mask = regions[:, r].reshape(len(regions), -1)
        if (mask.sum(1) == 1).all():
            out[f"cell of {name}"] = (cells(mask.argmax(1)), True)
    goals = scenario.candidate_goals
    q = np.asarray(candidate_q_values(tab, _goal_weights(scenario), spec.gamma, reach=[goal.reach for goal in goals]))
    for g, goal in enumerate(goals):
        qs = q[g][live]  # [N, A]
        best = qs.max(1, keepdims=True)
        out[f"next action for {goal.name}"] = (qs >= best - TIE_TOL * np.maximum(1.0, np.abs(best)), False)
    return out


def check_network_run(run_dir: Path) -> tuple[dict[str, Any], Any]:
    """The run's metadata and scenario, once the run is known to hold networks trained by mesascope's PPO.

    Raises:
        MesascopeError: if the folder is not a run, or its systems are not such networks.
    """
    meta, scenario = load_run(run_dir)
    if scenario.kind != "gridworld" or meta.get("optimizer", "ppo") != "ppo":
        what = f"a {scenario.kind} run" if scenario.kind != "gridworld" else f"trained by {meta.get('optimizer')!r}"
        raise MesascopeError(f"{run_dir} is {what}: probes read the layers of networks trained by mesascope's PPO "
                             "(a mesa-optimizer's objective is read off directly in its audit)")
    return meta, scenario


def check_probe_run(run_dir: Path, *, n_levels: int, folds: int, ridge: float) -> tuple[dict[str, Any], Any]:
    """The run's metadata and scenario, once it is known to hold PPO networks or explicit mesa-optimizers,
    and the probe options in range.

    Raises:
        MesascopeError: if the run has nothing to read layer by layer, or the options are out of range.
    """
    meta, scenario = load_run(run_dir)
    optimizer = str(meta.get("optimizer", "ppo"))
    if optimizer == "outside" and scenario.kind == "gridworld":
        fmt = (meta.get("config") or {}).get("format")
        if fmt != "sb3":
            raise MesascopeError(f"{run_dir} audits an outside {fmt} policy: probes read the layers of stable-baselines3 "
                                 "policies (torch modules), while a callable is a black box to mesascope and an ONNX "
                                 "graph's intermediate outputs are not read")
    elif not optimizer.startswith("mesa"):
        meta, scenario = check_network_run(run_dir)
    if n_levels < 2 or not 2 <= folds <= n_levels:
        raise MesascopeError(f"--levels must be at least 2 and --folds in [2, levels]; got levels {n_levels}, folds {folds}")
    if not ridge > 0:
        raise MesascopeError(f"--ridge must be positive; got {ridge}")
    return meta, scenario


class _Networks(NamedTuple):
    seeds: list[int]
    params: list[Any]  # each seed's network arrays (`eqx.partition`)
    names: tuple[str, ...]  # `layer_names`
    static: Any  # the networks' shared non-array part
    acts: Callable[[Any, jax.Array], dict[str, jax.Array]]  # jitted `(params, obs [N, ...]) -> {layer: [N, D]}`


def _networks(run_dir: Path, meta: dict[str, Any], scenario: Any) -> _Networks:
    """Every seed's trained network of a PPO run, ready to read layer by layer.

    Raises:
        MesascopeError: if a seed's network file is missing.
    """
    trainer = get_trainer("ppo")
    config = trainer.from_json(meta["config"])
    seeds = list(meta["seeds"])
    missing = [p for p in trainer.system_paths(Path(run_dir), seeds) if not p.exists()]
    if missing:
        raise MesascopeError(f"{missing[0]} is missing: the run's training did not finish; rerun `mesascope run`")
    networks = load_networks(scenario, config, seeds, Path(run_dir))
    _, static = eqx.partition(networks[0], eqx.is_array)
    params = [eqx.partition(network, eqx.is_array)[0] for network in networks]
    # One compiled program serves every seed: the parameters are an argument, not a constant.
    acts = jax.jit(lambda p, obs: layer_activations(eqx.combine(p, static), obs))
    return _Networks(seeds, params, layer_names(networks[0]), static, acts)


class _Planners(NamedTuple):
    seeds: list[int]
    names: tuple[str, ...]
    layers: Callable[[int, Level, Any, np.ndarray], dict[str, np.ndarray]]  # (seed index, levels, tab, live)


PLANNER_LAYERS = ("features", "mesa reward", "planned q")
"""What an explicit mesa-optimizer computes at a state, in the order it computes it (module docstring)."""


def _planners(run_dir: Path, meta: dict[str, Any], scenario: Any) -> _Planners:
    """Every seed's mesa-optimizer of a `mesa-*` run, read as layers at every live state.

    Raises:
        MesascopeError: if a seed's saved objective is missing.
    """
    from mesascope.experiments.train import mesa_system
    from mesascope.systems.mesa import MesaParams, soft_q

    trainer = get_trainer(meta["optimizer"])
    config = trainer.from_json(meta["config"])
    seeds = list(meta["seeds"])
    missing = [p for p in trainer.system_paths(Path(run_dir), seeds) if not p.exists()]
    if missing:
        raise MesascopeError(f"{missing[0]} is missing: the run's training did not finish; rerun `mesascope run`")
    system = mesa_system(scenario, config)
    thetas = [jnp.asarray(np.load(p)) for p in trainer.system_paths(Path(run_dir), seeds)]

    @jax.jit
    def one(theta, level, tab):
        psi = system.features(level)  # [S, A, M]
        reward = psi @ theta
        q = soft_q(tab.next_state, reward, system.gamma, system.beta, system.iters)
        return psi.reshape(psi.shape[0], -1), reward, q

    def layers(i: int, levels: Level, tab: Any, live: np.ndarray) -> dict[str, np.ndarray]:
        psi, reward, q = jax.vmap(one, in_axes=(None, 0, 0))(MesaParams(thetas[i]).theta, levels, tab)
        return {name: np.asarray(x)[live] for name, x in zip(PLANNER_LAYERS, (psi, reward, q), strict=True)}

    return _Planners(seeds, PLANNER_LAYERS, layers)


def probe_run(
    run_dir: Path,
    *,
    n_levels: int = 64,
    folds: int = 4,
    ridge: float = 1.0,
    progress: Callable[[str, float], None] = lambda stage, frac: None,
) -> dict[str, Any]:
    """Probe every layer of every seed's system, on train and deploy levels.

    Args:
        run_dir: A finished gridworld run trained with mesascope's PPO, or of an explicit mesa-optimizer
            (its planner's layers, `PLANNER_LAYERS`).
        n_levels: Levels per split (the audit's sample, its first `n_levels`).
        folds: Folds over levels for the cross-validation.
        ridge: Ridge penalty on standardised activations.
        progress: `progress(stage, fraction)`.

    Returns:
        The contents of `inside/probes.json` (also written there).

    Raises:
        MesascopeError: if the run has no networks to read, or the options are out of range.
    """
    meta, scenario = check_probe_run(run_dir, n_levels=n_levels, folds=folds, ridge=ridge)
    if str(meta.get("optimizer", "ppo")).startswith("mesa"):
        planners = _planners(run_dir, meta, scenario)
        seeds, names, layers_of = planners.seeds, planners.names, planners.layers
    elif meta.get("optimizer") == "outside":
        from mesascope.systems.outside import OutsideRecord, sb3_layer_activations

        spec = OutsideRecord(**meta["config"]).spec_in(Path(run_dir))
        seeds = list(meta["seeds"])
        names, torch_acts = sb3_layer_activations(spec, scenario.spec)

        def layers_of(i: int, lv: Level, tab: Any, live: np.ndarray) -> dict[str, np.ndarray]:
            obs = _observations(scenario, lv)[live]
            return torch_acts(np.asarray(obs, np.float32))
    else:
        nets = _networks(run_dir, meta, scenario)
        seeds, names = nets.seeds, nets.names

        def layers_of(i: int, lv: Level, tab: Any, live: np.ndarray) -> dict[str, np.ndarray]:
            obs = _observations(scenario, lv)[live]  # [N, H, W, C]
            return {k: np.asarray(v) for k, v in nets.acts(nets.params[i], jnp.asarray(obs)).items()}

    levels = audited_levels(scenario, AuditConfig(n_train=n_levels, n_deploy=n_levels))
    result: dict[str, Any] = {"levels": n_levels, "folds": folds, "ridge": ridge, "layers": list(names),
                              "optimizer": meta.get("optimizer", "ppo"),
                              "shuffle_seed": PROBE_SEED, "splits": {}}
    steps = len(levels) * len(seeds)
    done = 0
    for split, lv in levels.items():
        tab = tabularize_levels(scenario.spec, lv)
        live = _live(tab)
        targets = probe_targets(scenario, lv, tab, live)
        level_of = np.nonzero(live)[0]
        per_seed = []
        for i, seed in enumerate(seeds):
            layers = layers_of(i, lv, tab, live)
            rng = np.random.default_rng([PROBE_SEED, seed])
            per_seed.append({
                target: {layer: cross_validated_probe(layers[layer], correct, level_of, folds=folds, ridge=ridge,
                                                      rng=rng, per_level=per_level).as_dict() for layer in names}
                for target, (correct, per_level) in targets.items()
            })
            done += 1
            progress("probe", done / steps)
        result["splits"][split] = {"states": int(live.sum()), "targets": list(targets),
                                   "seeds": {str(s): p for s, p in zip(seeds, per_seed, strict=True)}}
    out = Path(run_dir) / "inside"
    out.mkdir(exist_ok=True)
    (out / "probes.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _observations(scenario: Any, levels: Level) -> np.ndarray:
    """float32 `[L, S, *obs_shape]`: the observation of every tabular state of every level."""
    return np.asarray(jax.vmap(lambda one: observe_all(scenario.spec, one))(levels))


def goal_vector(activations: Callable[[np.ndarray], dict[str, np.ndarray]], scenario: Any, levels: Level,
                layer: str, kind: str) -> np.ndarray:
    """The mean activation difference an object makes at a layer: float `[D_layer]`.

    Args:
        activations: `obs [N, *obs_shape] -> {layer: [N, D]}` of one network.
        scenario: The scenario.
        levels: `Level` batch `[L, ...]` holding the object.
        layer: The layer.
        kind: The object kind (`OBJECT_KINDS`); every object of that kind is removed for the difference.

    Returns:
        Mean over the live (reachable, non-terminal) states of every level of
        `act(level, state) - act(level without the object, state)`.
    """
    return _difference(activations, scenario, levels, _without(levels, kind), layer)


def _without(levels: Level, kind: str) -> Level:
    k = KIND_INDEX[kind]
    return levels._replace(obj_kind=jnp.where(levels.obj_kind == k, 0, levels.obj_kind))  # kind 0: an empty slot


def _difference(activations: Callable[[np.ndarray], dict[str, np.ndarray]], scenario: Any, levels: Level,
                without: Level, layer: str) -> np.ndarray:
    """Mean over the live states of `levels` of the layer's activations on `levels` minus on `without`."""
    live = _live(tabularize_levels(scenario.spec, levels))
    with_obj = activations(_observations(scenario, levels)[live])[layer]
    no_obj = activations(_observations(scenario, without)[live])[layer]
    return np.asarray(with_obj, np.float64).mean(0) - np.asarray(no_obj, np.float64).mean(0)


def _square_ok(levels: Level, kind: str, square: tuple[int, int]) -> np.ndarray:
    """bool `[L]`: levels on which `square` is free, not the start and not under an object of another kind."""
    r, c = square
    walls = np.asarray(levels.walls)
    start = np.asarray(levels.start)
    kinds, pos = np.asarray(levels.obj_kind), np.asarray(levels.obj_pos)
    taken = ((pos == np.array(square)).all(-1) & (kinds != KIND_INDEX[kind]) & (kinds > 0)).any(-1)
    return ~walls[:, r, c] & ~(start == np.array(square)).all(-1) & ~taken


def retarget_vector(activations: Callable[[np.ndarray], dict[str, np.ndarray]], scenario: Any, levels: Level,
                    layer: str, kind: str, square: tuple[int, int]) -> np.ndarray:
    """The mean activation difference an object makes at one square: float `[D_layer]`.

    Over the levels of `levels` where `square` can hold it (`_square_ok`): each level with every object of
    `kind` moved to `square`, minus the same level without it.

    Raises:
        MesascopeError: if no level can hold the object at `square`.
    """
    ok = _square_ok(levels, kind, square)
    if not ok.any():
        raise MesascopeError(f"--square {square[0]},{square[1]} is a wall or the start on every level the vector is built on")
    chosen = jax.tree_util.tree_map(lambda x: x[np.flatnonzero(ok)], levels)
    k = KIND_INDEX[kind]
    moved = chosen._replace(obj_pos=jnp.where((chosen.obj_kind == k)[..., None], jnp.asarray(square, jnp.int32), chosen.obj_pos))
    return _difference(activations, scenario, moved, _without(moved, kind), layer)


def _square_first(scenario: Any, tab: Any, probs: jax.Array, square: tuple[int, int]) -> np.ndarray:
    """float `[L]`: the exact probability of entering `square` before any candidate goal is reached."""
    spec = scenario.spec
    states = jax.vmap(lambda i: decode(spec, i))(jnp.arange(spec.n_states, dtype=jnp.int32))
    at_square = (states.pos == jnp.asarray(square)).all(-1) & ~states.done  # [S]
    goal_events = jnp.einsum("lsak,gk->lsag", tab.features, jnp.asarray(_goal_weights(scenario))) > 0
    square_event = at_square[tab.next_state][..., None]  # entering the square: [L, S, A, 1]
    events = jnp.concatenate([square_event, goal_events], axis=-1)
    return np.asarray(first_event_probabilities(tab.next_state, tab.start, probs, events, horizon=spec.max_steps))[:, 0]


def _effects(scenario: Any, tab: Any, probs: jax.Array) -> dict[str, Any]:
    """First-reached probabilities per goal and `J` per objective (informative levels) of `probs [L, S, A]`."""
    names, weights = scenario.weight_matrix()
    goals = [g.name for g in scenario.candidate_goals]
    first = np.asarray(first_reach_probabilities(tab, probs, jnp.asarray(_goal_weights(scenario)),
                                                 horizon=scenario.spec.max_steps)).mean(0)
    scores = score_levels(tab, probs, jnp.asarray(weights), scenario.spec.gamma, reach=scenario.reach_mask())
    informative = informative_levels(scores.v_optimal, scores.v_uniform)
    j = np.asarray(scores.j)
    return {
        "first_reached": {g: float(first[i]) for i, g in enumerate(goals)} | {"none": float(first[-1])},
        "j": {n: float(j[informative[:, i], i].mean()) if informative[:, i].any() else None for i, n in enumerate(names)},
        "informative_levels": {n: int(informative[:, i].sum()) for i, n in enumerate(names)},
    }


def steer_run(
    run_dir: Path,
    *,
    layer: str,
    kind: str,
    coef: float,
    n_levels: int = 256,
    vector_levels: int = 64,
    square: tuple[int, int] | None = None,
    progress: Callable[[str, float], None] = lambda stage, frac: None,
) -> dict[str, Any]:
    """Steer every seed's network with a goal vector and measure the effect exactly on deploy levels.

    Args:
        run_dir: A finished gridworld run trained with mesascope's PPO.
        layer: The layer edited (`layer_names`).
        kind: The object kind whose vector is added (`cheese`, ...).
        coef: The vector's coefficient (negative subtracts it: -1 removes the object's mean effect).
        n_levels: The audit's deploy levels the effect is measured on.
        vector_levels: Other deploy levels the vector is built on (key `STEER_SEED`).
        square: `(row, col)` to retarget to (`retarget_vector`); None for the object's own vector.
        progress: `progress(stage, fraction)`.

    Returns:
        The contents of `inside/steer-<kind>-<layer>-<coef>.json` (`...-at-<row>-<col>.json` when
        retargeting; also written there).

    Raises:
        MesascopeError: for a run without networks, an unknown layer or object, or counts out of range.
    """
    meta, scenario = check_network_run(run_dir)
    if kind not in scenario.spec.kinds:
        raise MesascopeError(f"--object {kind!r}: {meta['scenario']} has objects {', '.join(scenario.spec.kinds)}")
    if n_levels < 1 or vector_levels < 1:
        raise MesascopeError(f"--levels and --vector-levels must be at least 1; got {n_levels} and {vector_levels}")
    if square is not None and not (0 <= square[0] < scenario.spec.height and 0 <= square[1] < scenario.spec.width):
        raise MesascopeError(f"--square {square[0]},{square[1]} is outside the {scenario.spec.height}x{scenario.spec.width} grid")
    nets = _networks(run_dir, meta, scenario)
    if layer not in nets.names:
        raise MesascopeError(f"--layer {layer!r}: this network's layers are {', '.join(nets.names)}")
    steered = jax.jit(lambda params, obs, delta: steered_action_probs(eqx.combine(params, nets.static), obs, layer, delta))
    vector_lv = scenario.sample_levels(jax.random.key(STEER_SEED), vector_levels, "deploy")
    levels = audited_levels(scenario, AuditConfig(n_train=1, n_deploy=n_levels))["deploy"]
    tab = tabularize_levels(scenario.spec, levels)
    obs = _observations(scenario, levels)
    flat = jnp.asarray(obs.reshape((-1,) + obs.shape[2:]))
    shape = obs.shape[:2] + (scenario.spec.n_actions,)
    result: dict[str, Any] = {"layer": layer, "object": kind, "coef": coef, "levels": n_levels,
                              "vector_levels": vector_levels, "vector_seed": STEER_SEED, "seeds": {}}
    if square is not None:
        target_ok = _square_ok(levels, kind, square)
        result["square"] = list(square)
        result["square_levels"] = int(target_ok.sum())
    for i, (seed, params) in enumerate(zip(nets.seeds, nets.params, strict=True)):
        read = lambda o, params=params: nets.acts(params, jnp.asarray(o))  # noqa: E731
        vector = (goal_vector(read, scenario, vector_lv, layer, kind) if square is None
                  else retarget_vector(read, scenario, vector_lv, layer, kind, square))
        delta = jnp.asarray(coef * vector, jnp.float32)
        before = steered(params, flat, jnp.zeros_like(delta)).reshape(shape)
        after = steered(params, flat, delta).reshape(shape)
        entry = {"vector_norm": float(np.linalg.norm(vector)),
                 "unedited": _effects(scenario, tab, before), "steered": _effects(scenario, tab, after)}
        if square is not None:
            for name, probs in (("unedited", before), ("steered", after)):
                p = _square_first(scenario, tab, probs, square)[target_ok]
                entry[name]["square_first"] = float(p.mean()) if p.size else None
                entry[name]["square_first_share"] = float((p > 0.5).mean()) if p.size else None
        result["seeds"][str(seed)] = entry
        progress("steer", (i + 1) / len(nets.seeds))
    out = Path(run_dir) / "inside"
    out.mkdir(exist_ok=True)
    (out / steer_file(kind, layer, coef, square)).write_text(json.dumps(result, indent=2) + "\n")
    return result


def steer_file(kind: str, layer: str, coef: float, square: tuple[int, int] | None) -> str:
    """The file name `steer_run` writes under `inside/`."""
    return f"steer-{kind}-{layer}-{coef:g}" + (f"-at-{square[0]}-{square[1]}" if square is not None else "") + ".json"
