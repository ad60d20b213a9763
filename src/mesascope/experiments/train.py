"""Base optimizers as one table: optimizer name -> `Trainer` (typed settings, presets, train, save, load).

A gridworld scenario names its base optimizer (`Scenario.optimizer`); the harness looks it up here. Every
trainer declares its training settings as `Param`s, so `--set NAME=VALUE` is checked (type and range)
before a run folder exists, and writes and reads its own files in the run folder:

* `ppo`: neural actor-critics trained by PPO (`mesascope.optimizers.ppo`), all seeds in one vmapped
  program; `systems/seed-<k>.eqx`;
* `mesa-gradient`, `mesa-evolution`, `mesa-exhaustive`, `mesa-reward-model`: explicit mesa-optimizers
  (`mesascope.systems.mesa`) whose mesa-objective weights are what the base optimizer learns;
  `systems/seed-<k>.npy`;
* `outside`: a policy trained elsewhere (`mesascope audit-policy`, `mesascope.experiments.outside`); it
  only loads: `systems/seed-0.json` names the policy (`mesascope.systems.outside.OutsideRecord`).

Both write the learning curves to `training.npz`.

PPO can stop when competent (`--set stop_at_j_base=0.9`): every `competence_every` updates it scores every
seed's exact `J_base` on a fixed, seeded sample of training levels (the audit's definition, `CompetenceCheck`)
and keeps, for each seed that reached the target, its parameters at that check. `training.npz` then also
holds `competence_checks`, `competence_j_base`, `competent_at_update` and `competent_at_step`
(`train_systems`). Off by default: no check, the same program and the same results as before.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import GridSpec, Level
from mesascope.levels.tabular import TabularMDP, observe_all
from mesascope.measures.scores import (
    informative_levels,
    normalised_score,
    policy_values,
    reference_values,
    system_action_probs,
    tabularize_levels,
)
from mesascope.measures.separation import proxy_objectives, separating_levels
from mesascope.optimizers.curricula import CURRICULA, PLR_SCORES
from mesascope.optimizers.ppo import PPOConfig, PRESETS as PPO_PRESETS, make_train
from mesascope.params import Param, ParamError, parse_values
from mesascope.programs import cached_jit
from mesascope.scenarios import Scenario
from mesascope.systems.bridge import Bridge
from mesascope.systems.mesa import MesaOptimizer, MesaParams, train_evolution, train_gradient
from mesascope.systems.outside import OutsideRecord, load_policy, outside_action_probs
from mesascope.systems.policy import ActorCritic, NetworkConfig, action_probs, make_actor_critic
from mesascope.types import MesascopeError

__all__ = [
    "COMPETENCE_SEED",
    "CompetenceCheck",
    "MESA_PRESETS",
    "MESA_SETTINGS",
    "PPO_SETTINGS",
    "TRAINERS",
    "MesaConfig",
    "TrainedSystem",
    "Trainer",
    "competence_sample",
    "get_trainer",
    "j_base_of",
    "load_networks",
    "make_competence_check",
    "train_mesa_systems",
    "train_systems",
]

ProgressFn = Callable[[str, float], None]


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
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"reward-model": {"beta": 100.0, "steps": 1}}
"""Per-method departures from a preset. `reward-model` (`mesascope.systems.pointer`): the fit is one
closed-form solve (one step), and the pointer's reward model is in base-reward units (one +1 per cheese)
rather than a scale the base optimizer can grow, so its planner needs beta 100 to act on it decisively:
at beta 10 the soft planner's entropy bonus (log 4 / beta per step) is worth more than a far cheese."""

PPO_SETTINGS = (
    Param("total_timesteps", "int", 1_000_000, "environment steps per seed", low=1, high=10**11),
    Param("num_envs", "int", 64, "parallel environments", low=1, high=65_536),
    Param("num_steps", "int", 16, "steps per environment per update (rollout length)", low=1, high=100_000),
    Param("update_epochs", "int", 3, "passes over each rollout", low=1, high=1000),
    Param("num_minibatches", "int", 4, "minibatches per epoch (must divide num_envs x num_steps)", low=1, high=65_536),
    Param("lr", "float", 1e-3, "Adam learning rate", low=0.0, high=10.0),
    Param("gamma", "float", 0.99, "discount for GAE", low=0.0, high=1.0),
    Param("gae_lambda", "float", 0.95, "GAE lambda", low=0.0, high=1.0),
    Param("clip_eps", "float", 0.2, "PPO clip range", low=0.0, high=10.0),
    Param("ent_coef", "float", 0.001, "entropy bonus", low=0.0, high=100.0),
    Param("vf_coef", "float", 0.5, "value loss weight", low=0.0, high=100.0),
    Param("max_grad_norm", "float", 0.5, "global gradient clipping", low=0.0, high=1e6),
    Param("anneal_lr", "bool", True, "anneal the learning rate linearly to 0"),
    Param("level_pool", "int", 65_536, "training levels generated once per seed", low=1, high=10**8),
    Param("network_kind", "str", "mlp", "policy architecture", choices=("mlp", "cnn")),
    Param("hidden", "int", 128, "width of the dense layers", low=1, high=16_384),
    Param("depth", "int", 2, "hidden dense layers", low=1, high=64),
    Param("channels", "ints", (16, 32), "convolution channels (cnn only)", low=1, high=4096),
    Param("stop_at_j_base", "float", 0.0, "stop each seed once its exact J_base on training levels reaches this (0: off)",
          low=0.0, high=1.0),
    Param("competence_every", "int", 16, "updates between checks of J_base (with stop_at_j_base)", low=1, high=10**9),
    Param("competence_levels", "int", 256, "training levels the J_base check is exact on (with stop_at_j_base)",
          low=1, high=16_384),
    Param("curriculum", "str", "dr", "how episodes' levels are chosen: dr (uniform over the pool), plr "
          "(prioritised level replay on plr_score), exact-plr (on exact regret), accel (exact-plr with edited "
          "levels)", choices=CURRICULA),
    Param("plr_score", "str", "pvl", "plr's level score: pvl (positive value loss) or maxmc", choices=PLR_SCORES),
    Param("replay_prob", "float", 0.5, "probability an episode starts on a buffer level (plr, exact-plr, accel)",
          low=0.0, high=1.0),
    Param("buffer_size", "int", 1024, "levels the PLR buffer holds", low=1, high=1_000_000),
    Param("rank_temperature", "float", 0.3, "temperature of PLR's rank prioritisation", low=1e-3, high=100.0),
    Param("staleness_coef", "float", 0.3, "weight of staleness in PLR's replay distribution", low=0.0, high=1.0),
    Param("min_fill", "float", 0.5, "share of the PLR buffer filled before levels are replayed", low=0.0, high=1.0),
    Param("robust", "bool", True, "robust PLR: gradients only on replayed levels"),
    Param("accel_edits", "int", 3, "edits from a replayed level to each ACCEL child (accel)", low=1, high=1000),
)
"""PPO's training settings (`--set`); `network_kind`, `hidden`, `depth`, `channels` set `PPOConfig.network`."""

MESA_SETTINGS = (
    Param("n_levels", "int", 64, "training levels per seed (the base objective is exact on them)", low=1, high=100_000),
    Param("steps", "int", 150, "gradient steps, or generations for evolution", low=1, high=10_000_000),
    Param("lr", "float", 0.05, "Adam learning rate (gradient)", low=0.0, high=100.0),
    Param("beta", "float", 10.0, "the planner's inverse temperature", low=1e-3, high=1e6),
    Param("plan_gamma", "float", 0.95, "the planner's own discount", low=0.0, high=0.9999),
    Param("plan_iters", "int", 100, "soft value-iteration sweeps per decision", low=1, high=100_000),
)
"""Training settings of every `mesa-*` optimizer (`--set`)."""

_NETWORK = {"network_kind": "kind", "hidden": "hidden", "depth": "depth", "channels": "channels"}


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


def _chunk_size(n_updates: int, target_chunks: int = 20) -> int:
    """The smallest divisor of `n_updates` that is at least `n_updates / target_chunks`.

    Equal chunks mean one compiled program for the whole run.
    """
    lo = max(1, math.ceil(n_updates / target_chunks))
    return next(c for c in range(lo, n_updates + 1) if n_updates % c == 0)


COMPETENCE_SEED = 17_000_017
"""Seeds the fixed sample of training levels of the competence check: the same for every run and every
seed, and not the audit's sample (`AUDIT_SEED`), so the audit's `J_base` is measured on levels the
stopping rule never looked at."""

_PROBS_CHUNK = 64
"""Levels whose action probabilities the check computes in one call, as `system_action_probs` (bounds the
`[n_seeds, chunk, S, ...]` observation and activation tensors on bigger grids)."""


@dataclass(frozen=True)
class CompetenceCheck:
    """A fixed sample of training levels and everything about it that does not depend on the system.

    Attributes:
        spec: The scenario's grid spec.
        levels: `Level` batched `[L]`.
        tab: `TabularMDP` batched `[L, ...]`.
        weights: float32 `[1, K]`, the base objective.
        reach: bool `[1]`, whether the base objective is valued at first arrival (`Objective.reach`).
        gamma: The scenario's discount.
        v_optimal: float32 `[L]`, `V^*` of the base objective at each level's start.
        v_uniform: float32 `[L]`, `V^unif` likewise.
        informative: bool `[L]`, the levels where `V^* - V^unif > SPAN_TOL` (the only ones averaged).
    """

    spec: GridSpec
    levels: Level
    tab: TabularMDP
    weights: jax.Array
    reach: np.ndarray
    gamma: float
    v_optimal: jax.Array
    v_uniform: jax.Array
    informative: np.ndarray


def competence_sample(scenario: Scenario, n: int) -> Level:
    """The competence check's `n` training levels, batched `[n]` (seeded by `COMPETENCE_SEED`)."""
    return scenario.sample_levels(jax.random.key(COMPETENCE_SEED), n, "train")


def make_competence_check(scenario: Scenario, levels: Level) -> CompetenceCheck:
    """Solve the base objective's `V^*` and `V^unif` on `levels` once, for every later check."""
    tab = tabularize_levels(scenario.spec, levels)
    weights = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))[None]
    reach = np.array([bool(scenario.base_objective.reach)])
    v_star, v_unif = reference_values(tab, weights, scenario.spec.gamma, reach=reach)
    return CompetenceCheck(scenario.spec, levels, tab, weights, reach, scenario.spec.gamma, v_star[:, 0], v_unif[:, 0],
                           informative_levels(v_star[:, 0], v_unif[:, 0]))


@partial(jax.jit, static_argnames=("spec", "static"))
def _seed_action_probs(params: Any, levels: Level, spec: GridSpec, static: Any) -> jax.Array:
    """float32 `[n_seeds, L, S, A]`: every seed's network on every state of every level (`params` `[n_seeds, ...]`)."""
    obs = jax.vmap(lambda lv: observe_all(spec, lv))(levels)  # [L, S, *obs_shape]
    flat = obs.reshape((-1,) + obs.shape[2:])
    probs = jax.vmap(lambda p: action_probs(eqx.combine(p, static), flat))(params)
    return probs.reshape(probs.shape[:1] + obs.shape[:2] + probs.shape[-1:])


def j_base_of(check: CompetenceCheck, static: Any, params: Any) -> np.ndarray:
    """Every seed's normalised `J_base` on the check's levels, exactly as the audit scores it.

    `J = (V^pi - V^unif) / (V^* - V^unif)` per level (`normalised_score`), averaged over the informative
    levels; 1 when no level is informative (every policy is then optimal).

    Args:
        check: The fixed sample (`make_competence_check`).
        static: The network's static part (`PPOTrainer.static`).
        params: The networks' array parts, batched `[n_seeds, ...]`.

    Returns:
        float64 `[n_seeds]`; NaN for a seed whose network outputs NaN (a diverged run never passes).
    """
    n = int(check.tab.start.shape[0])
    parts = []
    for lo in range(0, n, _PROBS_CHUNK):
        part = jax.tree_util.tree_map(lambda x: x[lo : lo + _PROBS_CHUNK], check.levels)
        parts.append(_seed_action_probs(params, part, check.spec, static))
    probs = jnp.concatenate(parts, axis=1)  # [n_seeds, L, S, A]
    mask = check.informative
    out = []
    for p in probs:
        v_pi = policy_values(check.tab, p, check.weights, check.gamma, reach=check.reach)[:, 0]
        # The audit's mean (`estimate_columns`): float64 over the informative levels.
        j = np.asarray(normalised_score(v_pi, check.v_optimal, check.v_uniform), np.float64)
        out.append(np.where(mask, j, 0.0).sum() / mask.sum() if mask.any() else 1.0)
    return np.asarray(out, np.float64)


def _check_chunk(n_updates: int, every: int) -> int:
    """Updates per compiled call when checking every `every` updates: their greatest common divisor.

    It divides both, so the chunks are equal (one compiled program for the whole run) and every check
    falls on a chunk boundary; a small chunk costs only a Python dispatch per call.
    """
    return math.gcd(n_updates, min(every, n_updates))


def shown_separating(scenario: Scenario, state: Any) -> np.ndarray | None:
    """The share of training episodes whose level separates the intended objective from a proxy goal.

    The levels are the curriculum's uniform sample of the episodes played (`CurriculumState.seen`, edited
    ACCEL levels included; each environment's last finished episode of each rollout is offered to it),
    every curriculum alike. Each level is solved exactly (`mesascope.measures.separation.separating_levels`,
    any proxy).

    Args:
        scenario: The training scenario.
        state: The final `TrainState`, batched over seeds.

    Returns:
        float64 `[n_seeds]`, or None when the scenario has no proxy goal.
    """
    if not proxy_objectives(scenario):
        return None
    seen = state.curriculum.seen
    out = []
    for i in range(int(seen.count.shape[0])):
        k = min(int(seen.count[i]), int(seen.levels.walls.shape[1]))
        levels = jax.tree_util.tree_map(lambda x: x[i, :k], seen.levels)
        sep = separating_levels(scenario, tabularize_levels(scenario.spec, levels))
        out.append(float(sep.any(-1).mean()) if sep.shape[0] else float("nan"))
    return np.asarray(out, np.float64)


def train_systems(
    scenario: Scenario, config: PPOConfig, seeds: Sequence[int], progress: ProgressFn = _noop
) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Train one system per seed with PPO, all seeds in one vmapped program.

    With `config.stop_at_j_base > 0`, every `competence_every` updates (and after the last) each seed's
    exact `J_base` is measured on a fixed sample of `competence_levels` training levels (`j_base_of`); a
    seed that reaches the target keeps the parameters of that check (the vmapped program goes on
    updating it, unused), and training ends once every seed has passed or the step budget is spent.

    Returns:
        `(params, static, metrics)`: params batched `[n_seeds, ...]`, the network's static part, and
        learning curves float32 `[n_seeds, n_updates]` per metric (`n_updates` the updates run). With
        stopping, a seed's curves are NaN after the update at which it passed (its saved system was not
        trained further), and `metrics` also holds `competence_checks` (int64 `[n_checks]`, the update
        count at each check), `competence_j_base` (float32 `[n_seeds, n_updates]`, the `J_base` of the
        latest check at or before each update, NaN before the first check and after the seed passed),
        and `competent_at_update`, `competent_at_step` (int64 `[n_seeds]`, the update count and
        environment steps per seed at which it passed, or -1). When the scenario has proxy goals,
        `shown_separating` (float64 `[n_seeds]`) is the share of training episodes whose level separates
        the intended objective from a proxy (`shown_separating`).
    """
    trainer = make_train(scenario, config)
    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])
    n_updates = config.num_updates
    stopping = config.stop_at_j_base > 0
    every = min(config.competence_every, n_updates)
    chunk = _check_chunk(n_updates, every) if stopping else _chunk_size(n_updates)
    init = jax.jit(jax.vmap(trainer.init))
    advance = jax.jit(jax.vmap(lambda ts: trainer.advance(ts, chunk)))
    progress("train", 0.0)
    state = init(keys)
    check = make_competence_check(scenario, competence_sample(scenario, config.competence_levels)) if stopping else None
    passed_at = np.full(len(seeds), -1, np.int64)
    saved = state.params
    checks: list[int] = []
    j_checks: list[np.ndarray] = []
    curves: list[dict[str, jax.Array]] = []
    done = 0
    while done < n_updates:
        state, metrics = advance(state)
        curves.append(metrics)
        jax.block_until_ready(metrics)
        done += chunk
        progress("train", done / n_updates)
        if check is None or (done % every and done < n_updates):
            continue
        j = j_base_of(check, trainer.static, state.params)
        newly = (passed_at < 0) & (j >= config.stop_at_j_base)
        passed_at[newly] = done
        saved = jax.tree_util.tree_map(lambda s, p: jnp.where(_along_seeds(newly, p), p, s), saved, state.params)
        checks.append(done)
        j_checks.append(j)
        if (passed_at >= 0).all():
            progress("train", 1.0)
            break
    merged = {k: np.concatenate([np.asarray(c[k]) for c in curves], axis=1) for k in curves[0]}
    shown = shown_separating(scenario, state)
    extra = {} if shown is None else {"shown_separating": shown}
    if check is None:
        return state.params, trainer.static, merged | extra
    passed = passed_at >= 0
    params = jax.tree_util.tree_map(lambda s, p: jnp.where(_along_seeds(passed, p), s, p), saved, state.params)
    return params, trainer.static, _with_competence(merged, checks, j_checks, passed_at, config) | extra


def _along_seeds(mask: np.ndarray, like: jax.Array) -> jax.Array:
    """bool `[n_seeds]` shaped to broadcast against a `[n_seeds, ...]` leaf."""
    return jnp.asarray(mask).reshape(mask.shape + (1,) * (like.ndim - 1))


def _with_competence(
    curves: dict[str, np.ndarray], checks: list[int], j_checks: list[np.ndarray], passed_at: np.ndarray, config: PPOConfig
) -> dict[str, np.ndarray]:
    """The curves blanked (NaN) after each seed passed, plus the stopping rule's arrays (`train_systems`)."""
    n_done = next(iter(curves.values())).shape[1]
    after = np.arange(1, n_done + 1)[None, :] > np.where(passed_at >= 0, passed_at, n_done)[:, None]  # [n_seeds, n_done]
    blanked = {name: np.where(after, np.nan, values).astype(values.dtype) for name, values in curves.items()}
    # The latest check at or before each update, as a curve on the same axis as the others.
    latest = np.searchsorted(np.asarray(checks), np.arange(1, n_done + 1), side="right") - 1  # [n_done]
    j_all = np.stack(j_checks, axis=1)  # [n_seeds, n_checks]
    j_curve = np.where(latest >= 0, j_all[:, np.maximum(latest, 0)], np.nan)
    return {
        **blanked,
        "competence_checks": np.asarray(checks, np.int64),
        "competence_j_base": np.where(after, np.nan, j_curve).astype(np.float32),
        "competent_at_update": passed_at.copy(),
        "competent_at_step": np.where(passed_at >= 0, passed_at * config.steps_per_update, -1).astype(np.int64),
    }


def mesa_system(scenario: Scenario, config: MesaConfig) -> MesaOptimizer:
    """The scenario's mesa-optimizer class (`Scenario.mesa_system`, default `MesaOptimizer`), configured."""
    cls = scenario.mesa_system or MesaOptimizer
    return cls(scenario.spec, beta=config.beta, gamma=config.plan_gamma, iters=config.plan_iters)


def train_mesa_systems(
    scenario: Scenario, config: MesaConfig, seeds: Sequence[int], progress: ProgressFn = _noop
) -> tuple[jax.Array, dict[str, np.ndarray]]:
    """Train one explicit mesa-optimizer per seed (its mesa-objective weights are what is learned).

    Returns:
        `(theta, metrics)`: float32 `[n_seeds, M]` mesa-objective weights and the learning curves
        (`base_value`, mean exact base value on the seed's training levels) `[n_seeds, steps]`.
    """
    system = mesa_system(scenario, config)
    w_base = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))
    thetas, curves = [], []
    progress("train", 0.0)
    for i, seed in enumerate(seeds):
        k_levels, k_init = jax.random.split(jax.random.key(int(seed)))
        levels = scenario.sample_levels(k_levels, config.n_levels, "train")
        tabs = tabularize_levels(scenario.spec, levels)
        result = _MESA_METHODS[config.method](system, levels, tabs, w_base, k_init, config)
        thetas.append(np.asarray(result.params.theta))
        curves.append(result.curve)
        progress("train", (i + 1) / len(seeds))
    return jnp.asarray(np.stack(thetas)), {"base_value": np.stack(curves)}


def _exhaustive(system: Any, levels: Any, tabs: Any, w_base: jax.Array, key: jax.Array, config: MesaConfig) -> Any:
    from mesascope.optimizers.exhaustive import train_exhaustive  # the perfect base optimizer over a weight grid

    return train_exhaustive(system, levels, tabs, w_base, key=key)


def _reward_model(system: Any, levels: Any, tabs: Any, w_base: jax.Array, key: jax.Array, config: MesaConfig) -> Any:
    from mesascope.systems.pointer import train_reward_model  # a pointer's base optimizer: closed-form regression

    return train_reward_model(system, levels, tabs, w_base)


_MESA_METHODS: dict[str, Callable[..., Any]] = {
    "gradient": lambda s, lv, tb, w, k, c: train_gradient(s, lv, tb, w, key=k, steps=c.steps, lr=c.lr),
    "evolution": lambda s, lv, tb, w, k, c: train_evolution(s, lv, tb, w, key=k, generations=c.steps),
    "exhaustive": _exhaustive,
    "reward-model": _reward_model,
}


@dataclass(frozen=True)
class Trainer:
    """One base optimizer: its settings, presets and how it trains, saves and loads systems.

    Attributes:
        optimizer: Its name, as a scenario's `optimizer` field says it.
        settings: Its training settings (`--set`), typed.
        presets: preset name -> its configuration object.
        configure: `(preset config, checked overrides) -> config`.
        to_json / from_json: The configuration as stored in run.json `config`, and back.
        fit: `(scenario, config, seeds, run_dir, progress) -> None`: trains and writes `systems/` and
            `training.npz`.
        load: `(scenario, config, seeds, run_dir) -> [TrainedSystem]`.
        file_suffix: The extension of its `systems/seed-<k>.*` files.
    """

    optimizer: str
    settings: tuple[Param, ...]
    presets: Mapping[str, Any]
    configure: Callable[[Any, Mapping[str, Any]], Any]
    to_json: Callable[[Any], dict[str, Any]]
    from_json: Callable[[Mapping[str, Any]], Any]
    fit: Callable[..., None]
    load: Callable[..., list[TrainedSystem]]
    file_suffix: str

    def config(self, preset: str, overrides: Mapping[str, Any]) -> Any:
        """The preset's configuration with `overrides` (typed text or values) checked and applied.

        Raises:
            ParamError: on an unknown preset or setting, or a value of the wrong type or out of range.
        """
        if preset not in self.presets:
            raise ParamError(f"unknown preset {preset!r} for optimizer {self.optimizer}; choose one of: {', '.join(self.presets)}")
        checked = parse_values(self.settings, overrides, owner=self.optimizer, what="setting", fill=False)
        return self.configure(self.presets[preset], checked)

    def system_paths(self, run_dir: Path, seeds: Sequence[int]) -> list[Path]:
        return [run_dir / "systems" / f"seed-{seed}.{self.file_suffix}" for seed in seeds]


def _ppo_configure(base: PPOConfig, checked: Mapping[str, Any]) -> PPOConfig:
    net = {_NETWORK[k]: v for k, v in checked.items() if k in _NETWORK}
    flat = {k: v for k, v in checked.items() if k not in _NETWORK}
    cfg = dataclasses.replace(base, **flat, network=dataclasses.replace(base.network, **net))
    if (cfg.num_envs * cfg.num_steps) % cfg.num_minibatches:
        raise ParamError(f"ppo: num_minibatches ({cfg.num_minibatches}) must divide num_envs x num_steps "
                         f"({cfg.num_envs} x {cfg.num_steps} = {cfg.num_envs * cfg.num_steps})")
    return cfg


def _ppo_from_json(data: Mapping[str, Any]) -> PPOConfig:
    net = NetworkConfig(**{**data["network"], "channels": tuple(data["network"]["channels"])})
    return PPOConfig(**{**data, "network": net})


def _ppo_fit(scenario: Scenario, config: PPOConfig, seeds: Sequence[int], run_dir: Path, progress: ProgressFn) -> None:
    started = time.perf_counter()
    params, _, metrics = train_systems(scenario, config, seeds, progress)
    # Wall time of the whole vmapped program (compilation included): steps per second per curriculum.
    metrics["train_seconds"] = np.float64(time.perf_counter() - started)
    (run_dir / "systems").mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        one = jax.tree_util.tree_map(lambda x: x[i], params)
        eqx.tree_serialise_leaves(run_dir / "systems" / f"seed-{seed}.eqx", one)
    np.savez(run_dir / "training.npz", **metrics)


def load_networks(scenario: Scenario, config: PPOConfig, seeds: Sequence[int], run_dir: Path) -> list[ActorCritic]:
    """The trained actor-critics of a PPO run, one per seed (`systems/seed-<k>.eqx`)."""
    # The template's shapes only: initialising real weights would compile (or load from the cache) a dozen
    # random-number programs that are thrown away at once.
    template = eqx.filter_eval_shape(
        lambda: make_actor_critic(jax.random.key(0), scenario.spec.obs_shape, scenario.spec.n_actions, config.network))
    return [eqx.tree_deserialise_leaves(run_dir / "systems" / f"seed-{seed}.eqx", template, filter_spec=_load_leaf)
            for seed in seeds]


def _load_leaf(f: Any, like: Any) -> Any:
    """One saved leaf: arrays are read with NumPy and copied to the device as they are.

    `eqx.default_deserialise_filter_spec` converts with `jnp.asarray`, which compiles a program per array
    shape (jax 0.10); `jax.device_put` gives the same array without one.
    """
    if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
        out = np.load(f)
        # As `jnp.load`: NumPy saves bfloat16 as void16.
        return jax.device_put(out.view(jnp.bfloat16) if out.dtype == "V2" else out)
    return eqx.default_deserialise_filter_spec(f, like)


def _ppo_load(scenario: Scenario, config: PPOConfig, seeds: Sequence[int], run_dir: Path) -> list[TrainedSystem]:
    networks = load_networks(scenario, config, seeds, run_dir)
    params, static = eqx.partition(networks[0], eqx.is_array)
    # One compiled program serves every seed: the parameters are an argument, not a constant.
    treedef = jax.tree_util.tree_structure(params)
    # The closure's only free values are the network's structure, which the scenario's observation shape,
    # action count and network settings determine: they are the compiled program's key. The parameters go
    # in as a flat list of arrays (a saved program cannot rebuild equinox modules from placeholders).
    obs_fn = cached_jit(
        lambda leaves, obs: action_probs(eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static), obs),
        key=("ppo-action-probs", scenario.spec.obs_shape, scenario.spec.n_actions, config.network))
    out = []
    for seed, network in zip(seeds, networks, strict=True):
        policy = partial(obs_fn, jax.tree_util.tree_leaves(eqx.partition(network, eqx.is_array)[0]))
        out.append(TrainedSystem(seed, lambda levels, tab, policy=policy: system_action_probs(scenario.spec, levels, policy)))
    return out


def _mesa_fit(scenario: Scenario, config: MesaConfig, seeds: Sequence[int], run_dir: Path, progress: ProgressFn) -> None:
    thetas, metrics = train_mesa_systems(scenario, config, seeds, progress)
    (run_dir / "systems").mkdir(parents=True, exist_ok=True)
    for seed, theta in zip(seeds, np.asarray(thetas)):
        np.save(run_dir / "systems" / f"seed-{seed}.npy", theta)
    np.savez(run_dir / "training.npz", **metrics)


def _mesa_load(scenario: Scenario, config: MesaConfig, seeds: Sequence[int], run_dir: Path) -> list[TrainedSystem]:
    system = mesa_system(scenario, config)
    bridge = system.default_bridge()
    probs_fn = jax.jit(jax.vmap(system.action_probs, in_axes=(None, 0, 0)))
    reward_fn = jax.jit(jax.vmap(lambda p, lv, tb: system.bridged_reward(p, lv, tb, bridge), in_axes=(None, 0, 0)))
    out = []
    for seed in seeds:
        params = MesaParams(jnp.asarray(np.load(run_dir / "systems" / f"seed-{seed}.npy")))
        out.append(TrainedSystem(seed, partial(probs_fn, params), system.mesa_objective(params), partial(reward_fn, params),
                                 bridge, bool(system.points_to_base)))
    return out


def _mesa_trainer(method: str) -> Trainer:
    presets = {name: dataclasses.replace(cfg, method=method, **METHOD_DEFAULTS.get(method, {})) for name, cfg in MESA_PRESETS.items()}
    return Trainer(
        optimizer=f"mesa-{method}",
        settings=MESA_SETTINGS,
        presets=presets,
        configure=lambda base, checked: dataclasses.replace(base, **checked),
        to_json=dataclasses.asdict,
        from_json=lambda data: MesaConfig(**data),
        fit=_mesa_fit,
        load=_mesa_load,
        file_suffix="npy",
    )


def _outside_fit(scenario: Scenario, config: OutsideRecord, seeds: Sequence[int], run_dir: Path, progress: ProgressFn) -> None:
    raise MesascopeError("an outside policy is trained elsewhere; audit it with `mesascope audit-policy SCENARIO --policy SPEC`")


def _outside_load(scenario: Scenario, config: OutsideRecord, seeds: Sequence[int], run_dir: Path) -> list[TrainedSystem]:
    policy = load_policy(config.spec_in(run_dir), scenario.spec)
    probs = partial(outside_action_probs, scenario.spec, policy=policy)
    return [TrainedSystem(seed, lambda levels, tab: probs(levels)) for seed in seeds]


TRAINERS: dict[str, Trainer] = {
    "ppo": Trainer("ppo", PPO_SETTINGS, PPO_PRESETS, _ppo_configure, dataclasses.asdict, _ppo_from_json, _ppo_fit,
                   _ppo_load, "eqx"),
    **{f"mesa-{m}": _mesa_trainer(m) for m in _MESA_METHODS},
    # Not a base optimizer: it loads the policy an `audit-policy` run names, so `mesascope audit` reads it too.
    "outside": Trainer("outside", (), {"outside": None}, lambda base, checked: base, dataclasses.asdict,
                       lambda data: OutsideRecord(**data), _outside_fit, _outside_load, "json"),
}
"""Every base optimizer a gridworld scenario can name, and `outside` (policies trained elsewhere)."""


def get_trainer(optimizer: str) -> Trainer:
    """The trainer of `optimizer`.

    Raises:
        MesascopeError: naming the known optimizers.
    """
    try:
        return TRAINERS[optimizer]
    except KeyError:
        raise MesascopeError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(TRAINERS)}") from None
