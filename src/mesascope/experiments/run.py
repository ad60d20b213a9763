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
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope import __version__
from mesascope.experiments.audit import AUDIT_SEED, AuditConfig, ProgressFn, audit_run
from mesascope.experiments.profiling import NULL_TIMER, StageTimer
from mesascope.measures.scores import system_action_probs, tabularize_levels
from mesascope.optimizers.ppo import PPOConfig, make_train, ppo_config
from mesascope.properties import Thresholds
from mesascope.scenarios import Scenario, get_scenario
from mesascope.systems.bridge import Bridge
from mesascope.systems.mesa import MesaOptimizer, MesaParams, train_evolution, train_gradient
from mesascope.systems.policy import NetworkConfig, action_probs, make_actor_critic
from mesascope.types import MesascopeError

__all__ = [
    "AUDIT_SEED",
    "AuditConfig",
    "MesaConfig",
    "OPTIMIZERS",
    "TrainedSystem",
    "audit_run",
    "load_systems",
    "run",
    "train_mesa_systems",
    "train_systems",
]


def _noop(stage: str, frac: float) -> None:
    return None


@dataclass(frozen=True)
class MesaConfig:
    """Training of an explicit mesa-optimizer (`mesascope.systems.mesa`) by a base optimizer.

    Attributes:
        method: "gradient" (through the differentiable planner), "evolution", "exhaustive" (every
            mesa-objective on a weight grid scored exactly; `mesascope.optimizers.exhaustive`), or
            "reward-model" (a pointer's reward model fitted by ridge least squares to the observed base
            rewards; `mesascope.systems.pointer`, defaults in `METHOD_DEFAULTS`).
        n_levels: Training levels per seed (the base objective is evaluated exactly on them).
        steps: Gradient steps, or generations for evolution.
        lr: Adam learning rate (gradient).
        beta: The planner's inverse temperature.
        plan_gamma: The planner's own discount.
        plan_iters: Soft value-iteration sweeps per decision.
    """

    method: str = "gradient"
    n_levels: int = 64
    steps: int = 150
    lr: float = 0.05
    beta: float = 10.0
    plan_gamma: float = 0.95
    plan_iters: int = 100


MESA_PRESETS = {"fast": MesaConfig(), "full": MesaConfig(n_levels=256, steps=400)}
OPTIMIZERS = ("ppo", "mesa-gradient", "mesa-evolution", "mesa-exhaustive", "mesa-reward-model")
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"reward-model": {"beta": 100.0, "steps": 1}}
"""Per-method departures from a preset. `reward-model` (`mesascope.systems.pointer`): the fit is one
closed-form solve (one step), and the pointer's reward model is in base-reward units (one +1 per cheese)
rather than a scale the base optimizer can grow, so its planner needs beta 100 to act on it decisively:
at beta 10 the soft planner's entropy bonus (log 4 / beta per step) is worth more than a far cheese."""


def _config_to_json(cfg: PPOConfig | MesaConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _config_from_json(optimizer: str, data: dict[str, Any]) -> PPOConfig | MesaConfig:
    if optimizer.startswith("mesa"):
        return MesaConfig(**data)
    net = NetworkConfig(**{**data["network"], "channels": tuple(data["network"]["channels"])})
    return PPOConfig(**{**data, "network": net})


def _make_config(optimizer: str, preset: str, overrides: dict[str, Any]) -> PPOConfig | MesaConfig:
    if optimizer == "ppo":
        return ppo_config(preset, **overrides)
    if preset not in MESA_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(MESA_PRESETS)}")
    method = optimizer.split("-", 1)[1]
    return dataclasses.replace(MESA_PRESETS[preset], method=method, **{**METHOD_DEFAULTS.get(method, {}), **overrides})


def _mesa_system(scenario: Scenario, cfg: MesaConfig) -> MesaOptimizer:
    # A scenario may declare its own mesa-optimizer class (e.g. one whose objective sees a training flag).
    return getattr(scenario, "mesa_system", MesaOptimizer)(scenario.spec, beta=cfg.beta, gamma=cfg.plan_gamma, iters=cfg.plan_iters)


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


def train_mesa_systems(
    scenario: Scenario, config: MesaConfig, seeds: Sequence[int], progress: ProgressFn = _noop
) -> tuple[jax.Array, dict[str, np.ndarray]]:
    """Train one explicit mesa-optimizer per seed (its mesa-objective weights are what is learned).

    Returns:
        `(theta, metrics)`: float32 `[n_seeds, M]` mesa-objective weights and the learning curves
        (`base_value`, mean exact base value on the seed's training levels) `[n_seeds, steps]`.
    """
    system = _mesa_system(scenario, config)
    w_base = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))
    thetas, curves = [], []
    progress("train", 0.0)
    for i, seed in enumerate(seeds):
        k_levels, k_init = jax.random.split(jax.random.key(int(seed)))
        levels = scenario.sample_levels(k_levels, config.n_levels, "train")
        tabs = tabularize_levels(scenario.spec, levels)
        if config.method == "gradient":
            result = train_gradient(system, levels, tabs, w_base, key=k_init, steps=config.steps, lr=config.lr)
        elif config.method == "exhaustive":  # the perfect base optimizer over a weight grid
            from mesascope.optimizers.exhaustive import train_exhaustive

            result = train_exhaustive(system, levels, tabs, w_base, key=k_init)
        elif config.method == "reward-model":  # a pointer's base optimizer: closed-form regression
            from mesascope.systems.pointer import train_reward_model

            result = train_reward_model(system, levels, tabs, w_base)
        else:
            result = train_evolution(system, levels, tabs, w_base, key=k_init, generations=config.steps)
        thetas.append(np.asarray(result.params.theta))
        curves.append(result.curve)
        progress("train", (i + 1) / len(seeds))
    return jnp.asarray(np.stack(thetas)), {"base_value": np.stack(curves)}


def save_systems(run_dir: Path, params: Any, seeds: Sequence[int], metrics: dict[str, np.ndarray]) -> None:
    """Write each seed's trained parameters and the learning curves into the run folder."""
    (run_dir / "systems").mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        one = jax.tree_util.tree_map(lambda x: x[i], params)
        eqx.tree_serialise_leaves(run_dir / "systems" / f"seed-{seed}.eqx", one)
    np.savez(run_dir / "training.npz", **metrics)


class TrainedSystem(NamedTuple):
    """One trained system as the audit sees it.

    Attributes:
        seed: Its training seed.
        probs: `(levels, tab) -> [L, S, A]`, its action probabilities on every state of every level.
        mesa_objective: The read-off mesa-objective (feature -> weight), for explicit mesa-optimizers.
        mesa_reward: `(levels, tab) -> TransitionReward` (`[L, S, A]` and `[L, S]` parts), the
            mesa-objective pulled back through the system's default bridge to a reward over each level's
            transitions (mesa-optimizers only).
        bridge: The bridge used, for the record.
        points_to_base: Whether the mesa-objective is by construction a pointer to the system's model of
            the base objective (the class's `points_to_base`); None for systems without a mesa-objective.
    """

    seed: int
    probs: Callable[[Any, Any], jax.Array]
    mesa_objective: dict[str, float] | None = None
    mesa_reward: Callable[[Any, Any], jax.Array] | None = None
    bridge: Bridge | None = None
    points_to_base: bool | None = None


def load_systems(run_dir: Path) -> tuple[dict[str, Any], Scenario, PPOConfig | MesaConfig, list[TrainedSystem]]:
    """Read a run folder's metadata, scenario, configuration and trained systems (one per seed)."""
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise MesascopeError(f"{run_dir} is not a mesascope run folder (no run.json); pass the --out folder of a run")
    meta = json.loads(meta_path.read_text())
    scenario = get_scenario(meta["scenario"])
    if meta.get("scenario_params"):
        scenario = scenario.with_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["scenario_params"].items()})
    optimizer = meta.get("optimizer", "ppo")
    config = _config_from_json(optimizer, meta["config"])
    paths = [run_dir / "systems" / f"seed-{seed}.{'npy' if optimizer.startswith('mesa') else 'eqx'}" for seed in meta["seeds"]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise MesascopeError(f"{missing[0]} is missing: the run's training did not finish; rerun `mesascope run`")
    if isinstance(config, MesaConfig):
        system = _mesa_system(scenario, config)
        bridge = system.default_bridge()
        probs_fn = jax.jit(jax.vmap(system.action_probs, in_axes=(None, 0, 0)))
        reward_fn = jax.jit(jax.vmap(lambda p, lv, tb: system.bridged_reward(p, lv, tb, bridge), in_axes=(None, 0, 0)))
        out = []
        for seed, path in zip(meta["seeds"], paths):
            params = MesaParams(jnp.asarray(np.load(path)))
            out.append(
                TrainedSystem(
                    seed,
                    partial(probs_fn, params),
                    system.mesa_objective(params),
                    partial(reward_fn, params),
                    bridge,
                    bool(system.points_to_base),
                )
            )
        return meta, scenario, config, out
    template = make_actor_critic(jax.random.key(0), scenario.spec.obs_shape, scenario.spec.n_actions, config.network)
    _, static = eqx.partition(template, eqx.is_array)
    # One compiled program serves every seed: the parameters are an argument, not a constant.
    obs_fn = jax.jit(lambda params, obs: action_probs(eqx.combine(params, static), obs))
    out = []
    for seed, path in zip(meta["seeds"], paths):
        params = eqx.partition(eqx.tree_deserialise_leaves(path, template), eqx.is_array)[0]
        policy = partial(obs_fn, params)
        out.append(TrainedSystem(seed, lambda levels, tab, policy=policy: system_action_probs(scenario.spec, levels, policy)))
    return meta, scenario, config, out


RunEvents = Callable[[str, Path, dict[str, Any]], None]
"""`events(stage, run_dir, data)`: hears a run's progress (see `run`)."""


def _no_events(stage: str, run_dir: Path, data: dict[str, Any]) -> None:
    return None


def _error_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


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
    thresholds: Thresholds = Thresholds(),
    events: RunEvents | None = None,
    timer: StageTimer = NULL_TIMER,
) -> dict[str, Any]:
    """Train `seeds` systems on a scenario and audit them; everything lands in `out`.

    `timer` (`--profile`) collects wall time per stage, training included, into `audit.json`'s `timings`.

    `events(stage, out, data)`, if given, hears "started" (run.json written), "trained" (systems
    saved), "audited" (audit.json written), then "complete", or "failed" with `{"error": ...}`; the
    result store (`mesascope.experiments.store.recorder`) records the run through it.

    Raises:
        MesascopeError: on a bad scenario id, preset, seed count or output folder.
    """
    from mesascope.scenarios.study import is_study

    if is_study(scenario_id):  # a non-gridworld scenario: its own optimizer, no level audit
        from mesascope.experiments.study import run_study

        emit = events or _no_events
        existed = (out / "run.json").exists()
        try:
            result = run_study(
                scenario_id, seeds=seeds, preset=preset, out=out, overrides=overrides, params=scenario_params,
                progress=progress, thresholds=thresholds,
            )
        except BaseException as err:
            if not existed and (out / "run.json").exists():
                emit("failed", out, {"error": _error_line(err)})
            raise
        emit("ingest", out, result)
        emit("complete", out, result)
        return result
    scenario = get_scenario(scenario_id)
    if scenario_params:
        scenario = scenario.with_params(**scenario_params)
    optimizer = scenario.optimizer
    try:
        config = _make_config(optimizer, preset, dict(overrides or {}))
    except (ValueError, TypeError) as err:
        raise MesascopeError(f"bad training setting for optimizer {optimizer!r}: {err}") from None
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
        "optimizer": optimizer,
        "seeds": seed_list,
        "config": _config_to_json(config),
        "thresholds": thresholds.to_dict(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    emit = events or _no_events
    emit("started", out, meta)
    try:
        with timer.stage("train"):
            if isinstance(config, MesaConfig):
                thetas, metrics = train_mesa_systems(scenario, config, seed_list, progress)
                (out / "systems").mkdir(parents=True, exist_ok=True)
                for seed, theta in zip(seed_list, np.asarray(thetas)):
                    np.save(out / "systems" / f"seed-{seed}.npy", theta)
                np.savez(out / "training.npz", **metrics)
            else:
                params, _, metrics = train_systems(scenario, config, seed_list, progress)
                save_systems(out, params, seed_list, metrics)
        emit("trained", out, meta)
        result = audit_run(out, audit, progress, thresholds, timer)
        emit("audited", out, result)
    except BaseException as err:  # recorded as incomplete (what finished stays), then re-raised
        emit("failed", out, {"error": _error_line(err)})
        raise
    emit("complete", out, result)
    return result
