"""`mesascope probe RUN_DIR`: which layers of a trained network encode the scenario's objects and goals.

For each seed's network and each split, every reachable, non-terminal state of `n_levels` audited levels
(the audit's own level sample, its first levels) is passed through the network and every layer's
activations are kept (`mesascope.systems.policy.layer_activations`). Linear probes
(`mesascope.measures.probes`) are fitted to two kinds of target, cross-validated across levels:

* `cell of <object>`: the grid cell an object of the level stands on (each object slot whose kind is the
  same on every probed level, and each region that is a single cell on every level, like the corner);
* `next action for <goal>`: the candidate goal's optimal actions at the state (exact `Q*`).

The results go to `RUN_DIR/inside/probes.json` and are printed as a table. Only networks trained by
mesascope's PPO have layers to read; other runs are refused with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope.experiments.audit import AuditConfig
from mesascope.experiments.outside import audited_levels
from mesascope.experiments.run import load_run
from mesascope.experiments.train import get_trainer, load_networks
from mesascope.levels.grid import OBJECT_KINDS
from mesascope.levels.tabular import observe_all
from mesascope.measures.distances import reachable_states
from mesascope.measures.goal_posterior import candidate_q_values
from mesascope.measures.probes import cross_validated_probe
from mesascope.measures.scores import tabularize_levels
from mesascope.systems.policy import layer_activations, layer_names
from mesascope.types import MesascopeError

__all__ = ["PROBE_SEED", "check_probe_run", "probe_run", "probe_targets", "probes_table"]

PROBE_SEED = 15
"""Seeds the shuffled-target baseline (the level sample is the audit's, `AUDIT_SEED`)."""

TIE_TOL = 1e-6


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
    names, weights = scenario.weight_matrix()
    goal_w = np.stack([weights[names.index(goal.name)] for goal in goals])
    q = np.asarray(candidate_q_values(tab, goal_w, spec.gamma, reach=[goal.reach for goal in goals]))
    for g, goal in enumerate(goals):
        qs = q[g][live]  # [N, A]
        best = qs.max(1, keepdims=True)
        out[f"next action for {goal.name}"] = (qs >= best - TIE_TOL * np.maximum(1.0, np.abs(best)), False)
    return out


def check_probe_run(run_dir: Path, *, n_levels: int, folds: int, ridge: float) -> tuple[dict[str, Any], Any]:
    """The run's metadata and scenario, once the run and the options are known to be probeable.

    Raises:
        MesascopeError: if the run has no networks to read, or the options are out of range.
    """
    meta, scenario = load_run(run_dir)
    if scenario.kind != "gridworld" or meta.get("optimizer", "ppo") != "ppo":
        what = f"a {scenario.kind} run" if scenario.kind != "gridworld" else f"trained by {meta.get('optimizer')!r}"
        raise MesascopeError(f"{run_dir} is {what}: probes read the layers of networks trained by mesascope's PPO "
                             "(a mesa-optimizer's objective is read off directly in its audit)")
    if n_levels < 2 or not 2 <= folds <= n_levels:
        raise MesascopeError(f"--levels must be at least 2 and --folds in [2, levels]; got levels {n_levels}, folds {folds}")
    if not ridge > 0:
        raise MesascopeError(f"--ridge must be positive; got {ridge}")
    return meta, scenario


def probe_run(
    run_dir: Path,
    *,
    n_levels: int = 64,
    folds: int = 4,
    ridge: float = 1.0,
    progress: Callable[[str, float], None] = lambda stage, frac: None,
) -> dict[str, Any]:
    """Probe every layer of every seed's network of a PPO run, on train and deploy levels.

    Args:
        run_dir: A finished gridworld run trained with mesascope's PPO.
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
    config = get_trainer("ppo").from_json(meta["config"])
    seeds = list(meta["seeds"])
    missing = [s for s in seeds if not (Path(run_dir) / "systems" / f"seed-{s}.eqx").exists()]
    if missing:
        raise MesascopeError(f"{run_dir}/systems/seed-{missing[0]}.eqx is missing: the run's training did not finish")
    networks = load_networks(scenario, config, seeds, Path(run_dir))
    names = layer_names(networks[0])
    _, static = eqx.partition(networks[0], eqx.is_array)
    acts = jax.jit(lambda params, obs: layer_activations(eqx.combine(params, static), obs))
    levels = audited_levels(scenario, AuditConfig(n_train=n_levels, n_deploy=n_levels))
    result: dict[str, Any] = {"levels": n_levels, "folds": folds, "ridge": ridge, "layers": list(names),
                              "shuffle_seed": PROBE_SEED, "splits": {}}
    steps = len(levels) * len(seeds)
    done = 0
    for split, lv in levels.items():
        tab = tabularize_levels(scenario.spec, lv)
        live = np.asarray(jax.vmap(reachable_states)(tab)) & ~np.asarray(tab.terminal)
        targets = probe_targets(scenario, lv, tab, live)
        level_of = np.nonzero(live)[0]
        obs = np.asarray(jax.vmap(lambda one: observe_all(scenario.spec, one))(lv))[live]  # [N, H, W, C]
        per_seed = []
        for seed, network in zip(seeds, networks, strict=True):
            params = eqx.partition(network, eqx.is_array)[0]
            layers = {k: np.asarray(v) for k, v in acts(params, jnp.asarray(obs)).items()}
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


def probes_table(result: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Rows `(split, target, {layer: "acc (shuffled)"})`, means over seeds, for the terminal table."""
    rows = []
    for split, block in result["splits"].items():
        for target in block["targets"]:
            cells = {}
            for layer in result["layers"]:
                scores = [s[target][layer] for s in block["seeds"].values()]
                acc = np.mean([s["accuracy"] for s in scores])
                shuffled = np.mean([s["shuffled"] for s in scores])
                cells[layer] = f"{acc:.2f} ({shuffled:.2f})"
            majority = np.mean([s[target][result["layers"][0]]["majority"] for s in block["seeds"].values()])
            cells["majority"] = f"{majority:.2f}"
            rows.append((split, target, cells))
    return rows
