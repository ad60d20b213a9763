"""The main job: train systems on a scenario, then audit every one of them exactly.

A run folder holds, in the order they are written (so a failure later never loses what finished):

* `run.json`: scenario, parameters, preset, configuration, seeds (written before training);
* `systems/seed-<k>.eqx` and `training.npz`: trained parameters and learning curves (after training);
* `audit.json`: the exact audit (after auditing).

`mesascope audit RUN_DIR` re-runs the audit from the saved systems without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope import __version__
from mesascope.measures.distances import pairwise_epic
from mesascope.measures.irl import goal_posterior, mce_irl
from mesascope.measures.scores import (
    first_reach_probabilities,
    score_levels,
    system_action_probs,
    tabularize_levels,
)
from mesascope.optimizers.ppo import PPOConfig, make_train, ppo_config
from mesascope.scenarios import Scenario, get_scenario
from mesascope.solve.dp import uniform_policy
from mesascope.systems.policy import NetworkConfig, action_probs, make_actor_critic
from mesascope.types import MesascopeError

__all__ = ["AUDIT_SEED", "AuditConfig", "audit_run", "load_systems", "run", "train_systems"]

IRL_LEVELS = 32
"""MCE IRL fits one reward shared by this many audited levels (the goal posterior uses all of them)."""
IRL_STEPS = 200

AUDIT_SEED = 20_221_118
"""Fixed key for the audit's level sample, so every run of a scenario is audited on the same levels."""


@dataclass(frozen=True)
class AuditConfig:
    """How many levels of each split to audit on, and with which key."""

    n_train: int = 256
    n_deploy: int = 256
    seed: int = AUDIT_SEED


ProgressFn = Callable[[str, float], None]
"""`progress(stage, fraction_done)`; the CLI draws it as a progress bar."""


def _noop(stage: str, frac: float) -> None:
    return None


def _config_to_json(cfg: PPOConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _config_from_json(data: dict[str, Any]) -> PPOConfig:
    net = NetworkConfig(**{**data["network"], "channels": tuple(data["network"]["channels"])})
    return PPOConfig(**{**data, "network": net})


def _chunk_size(n_updates: int, target_chunks: int = 20) -> int:
    """The smallest divisor of `n_updates` that is at least `n_updates / target_chunks`.

    Equal chunks mean one compiled program for the whole run.
    """
    lo = max(1, math.ceil(n_updates / target_chunks))
    return next(c for c in range(lo, n_updates + 1) if n_updates % c == 0)


def train_systems(
    scenario: Scenario, config: PPOConfig, seeds: Sequence[int], progress: ProgressFn = _noop
) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Train one system per seed with PPO, all seeds in one vmapped program.

    Returns:
        `(params, static, metrics)`: params batched `[n_seeds, ...]`, the network's static part, and
        learning curves float32 `[n_seeds, num_updates]` per metric.
    """
    trainer = make_train(scenario, config)
    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])
    chunk = _chunk_size(config.num_updates)
    init = jax.jit(jax.vmap(trainer.init))
    advance = jax.jit(jax.vmap(lambda ts: trainer.advance(ts, chunk)))
    progress("train", 0.0)
    state = init(keys)
    curves: list[dict[str, jax.Array]] = []
    for i in range(config.num_updates // chunk):
        state, metrics = advance(state)
        curves.append(metrics)
        jax.block_until_ready(metrics)
        progress("train", (i + 1) * chunk / config.num_updates)
    merged = {k: np.concatenate([np.asarray(c[k]) for c in curves], axis=1) for k in curves[0]}
    return state.params, trainer.static, merged


def save_systems(run_dir: Path, params: Any, seeds: Sequence[int], metrics: dict[str, np.ndarray]) -> None:
    """Write each seed's trained parameters and the learning curves into the run folder."""
    (run_dir / "systems").mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        one = jax.tree_util.tree_map(lambda x: x[i], params)
        eqx.tree_serialise_leaves(run_dir / "systems" / f"seed-{seed}.eqx", one)
    np.savez(run_dir / "training.npz", **metrics)


def load_systems(run_dir: Path) -> tuple[dict[str, Any], Scenario, PPOConfig, list[Any]]:
    """Read a run folder's metadata, scenario, configuration and trained systems (one model per seed)."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise MesascopeError(f"{run_dir} is not a mesascope run folder (no run.json); pass the --out folder of a run")
    meta = json.loads(meta_path.read_text())
    scenario = get_scenario(meta["scenario"])
    if meta.get("scenario_params"):
        scenario = scenario.with_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["scenario_params"].items()})
    config = _config_from_json(meta["config"])
    template = make_actor_critic(jax.random.key(0), scenario.spec.obs_shape, scenario.spec.n_actions, config.network)
    models = []
    for seed in meta["seeds"]:
        path = run_dir / "systems" / f"seed-{seed}.eqx"
        if not path.exists():
            raise MesascopeError(f"{path} is missing: the run's training did not finish; rerun `mesascope run`")
        models.append(eqx.tree_deserialise_leaves(path, template))
    return meta, scenario, config, models


def _audit_split(scenario: Scenario, split: str, n: int, key: jax.Array, policies: list[Callable]) -> dict[str, Any]:
    names, weights = scenario.weight_matrix()
    goals = [g.name for g in scenario.candidate_goals]
    goal_w = weights[[names.index(g) for g in goals]]
    levels = scenario.sample_levels(key, n, split)
    tab = tabularize_levels(scenario.spec, levels)

    gamma = scenario.spec.gamma
    irl_tab = jax.tree_util.tree_map(lambda x: x[:IRL_LEVELS], tab)

    def summarise(probs: jax.Array, behavioral: bool) -> dict[str, Any]:
        s = score_levels(tab, probs, weights, gamma)
        first = np.asarray(first_reach_probabilities(tab, probs, goal_w, horizon=scenario.spec.max_steps)).mean(0)
        out: dict[str, Any] = {
            "scores": {name: float(x) for name, x in zip(names, np.asarray(s.j).mean(0))},
            "values": {name: float(x) for name, x in zip(names, np.asarray(s.v_policy).mean(0))},
            "first_reached": {**{g: float(p) for g, p in zip(goals, first[:-1])}, "none": float(first[-1])},
        }
        if behavioral:
            posterior = goal_posterior(tab, probs, jnp.asarray(goal_w), gamma, names=tuple(goals))
            irl = mce_irl(irl_tab, probs[:IRL_LEVELS], gamma=gamma, steps=IRL_STEPS)
            w_beh = np.asarray(irl.weights)
            out["behavioral"] = {
                "goal_posterior": posterior.as_dict(),
                "irl": {
                    "weights": {f: float(w) for f, w in zip(scenario.feature_names, w_beh)},
                    "loglik_per_step": float(irl.loglik),
                    "uniform_loglik_per_step": float(irl.uniform_loglik),
                    "levels": int(irl_tab.start.shape[0]),
                },
            }
            rewards = {"behavioral": tab.features @ jnp.asarray(w_beh)}
            rewards.update({name: tab.features @ jnp.asarray(w) for name, w in zip(names, weights)})
            out["distances"] = {"epic": pairwise_epic(tab, rewards, gamma)}
        return out

    systems = [summarise(system_action_probs(scenario.spec, levels, p), True) for p in policies]
    uniform = summarise(jax.vmap(uniform_policy)(tab.next_state), False)
    return {"systems": systems, "uniform": uniform}


def audit_run(run_dir: Path, audit: AuditConfig = AuditConfig(), progress: ProgressFn = _noop) -> dict[str, Any]:
    """Audit every trained system of a run exactly and write `audit.json`.

    Returns:
        The audit as a dict (also written to `run_dir / "audit.json"`).
    """
    meta, scenario, config, models = load_systems(run_dir)
    # One compiled program serves every seed: the parameters are an argument, not a constant.
    _, static = eqx.partition(models[0], eqx.is_array)
    probs_fn = jax.jit(lambda params, obs: action_probs(eqx.combine(params, static), obs))
    policies = [partial(probs_fn, eqx.partition(m, eqx.is_array)[0]) for m in models]
    key_train, key_deploy = jax.random.split(jax.random.key(audit.seed))
    progress("audit", 0.0)
    train = _audit_split(scenario, "train", audit.n_train, key_train, policies)
    progress("audit", 0.5)
    deploy = _audit_split(scenario, "deploy", audit.n_deploy, key_deploy, policies)
    progress("audit", 1.0)
    curves = dict(np.load(run_dir / "training.npz")) if (run_dir / "training.npz").exists() else {}
    systems = []
    for i, seed in enumerate(meta["seeds"]):
        entry: dict[str, Any] = {
            "seed": seed,
            "scores": {"train": train["systems"][i]["scores"], "deploy": deploy["systems"][i]["scores"]},
            "values": {"train": train["systems"][i]["values"], "deploy": deploy["systems"][i]["values"]},
            "first_reached": {
                "train": train["systems"][i]["first_reached"],
                "deploy": deploy["systems"][i]["first_reached"],
            },
            "behavioral": {"train": train["systems"][i]["behavioral"], "deploy": deploy["systems"][i]["behavioral"]},
            "distances": {"train": train["systems"][i]["distances"], "deploy": deploy["systems"][i]["distances"]},
        }
        if curves:
            tail = max(1, curves["episode_return"].shape[1] // 10)
            entry["training"] = {
                "final_episode_return": float(curves["episode_return"][i, -tail:].mean()),
                "final_episode_length": float(curves["episode_length"][i, -tail:].mean()),
            }
        systems.append(entry)
    result = {
        "mesascope_version": __version__,
        "scenario": meta["scenario"],
        "scenario_params": meta.get("scenario_params", {}),
        "description": scenario.description,
        "expected_finding": scenario.expected_finding,
        "preset": meta["preset"],
        "seeds": meta["seeds"],
        "optimizer": "ppo",
        "config": meta["config"],
        "audit": {"n_train": audit.n_train, "n_deploy": audit.n_deploy, "seed": audit.seed},
        "objectives": {name: dict(obj.weights) for name, obj in scenario.objectives().items()},
        "candidate_goals": [g.name for g in scenario.candidate_goals],
        "gamma": scenario.spec.gamma,
        "systems": systems,
        "baselines": {
            "uniform": {
                "scores": {"train": train["uniform"]["scores"], "deploy": deploy["uniform"]["scores"]},
                "first_reached": {"train": train["uniform"]["first_reached"], "deploy": deploy["uniform"]["first_reached"]},
            }
        },
    }
    (run_dir / "audit.json").write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return result


def run(
    scenario_id: str,
    *,
    seeds: int = 4,
    preset: str = "fast",
    out: Path,
    audit: AuditConfig = AuditConfig(),
    overrides: dict[str, Any] | None = None,
    scenario_params: dict[str, Any] | None = None,
    progress: ProgressFn = _noop,
) -> dict[str, Any]:
    """Train `seeds` systems on a scenario and audit them; everything lands in `out`.

    Raises:
        MesascopeError: on a bad scenario id, preset, seed count or output folder.
    """
    scenario = get_scenario(scenario_id)
    if scenario_params:
        scenario = scenario.with_params(**scenario_params)
    try:
        config = ppo_config(preset, **(overrides or {}))
    except (ValueError, TypeError) as err:
        raise MesascopeError(str(err)) from None
    if seeds < 1:
        raise MesascopeError(f"--seeds must be at least 1; got {seeds}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    seed_list = list(range(seeds))
    meta = {
        "mesascope_version": __version__,
        "scenario": scenario_id,
        "scenario_params": dict(scenario_params or {}),
        "preset": preset,
        "seeds": seed_list,
        "config": _config_to_json(config),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    params, _, metrics = train_systems(scenario, config, seed_list, progress)
    save_systems(out, params, seed_list, metrics)
    return audit_run(out, audit, progress)
