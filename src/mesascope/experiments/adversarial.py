"""Adversarial fine-tuning: find the levels where each trained system fails the intended objective most,
train it on them with the base objective, and audit it before and after.

Seed 003 ("A problem with adversarial training") worries that training an initially aligned agent on the
situations where it does badly may change its values for the worse, because credit assignment reshapes
the whole policy, not only the punished actions. `mesascope adversarial RUN_DIR` measures it exactly:

1. **Search.** For each system, `levels` training levels (seeded by `ADVERSARIAL_SEED`) are edited for
   `rounds` rounds with the scenario's own edits (`Scenario.mutate`, as ACCEL uses them); an edit is kept
   when the system's exact intended regret `V* - V^pi` on the edited level is at least the level's
   before (a hill climb on each level, every value solved by dynamic programming).
2. **Fine-tuning.** PPO continues from the trained network on a pool made of that system's adversarial
   levels only, with the base objective, for `steps` environment steps (the run's PPO settings; the
   learning rate anneals from the preset's over the fine-tuning).
3. **Audit.** The fine-tuned systems form a new run folder, audited exactly as any run, on the same
   held-out train and deploy levels as the original audit (the audit's levels depend only on its seed).
   `adversarial.json` holds the comparison per seed: `J_intended` on the system's own adversarial
   levels and on the held-out deploy levels, `J_base` on train, first-reached probabilities, the goal
   posterior, the behavioral objective and its EPIC distance to the intended objective; the report
   shows before and after side by side.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mesascope.experiments.audit import AuditConfig, audit_run
from mesascope.experiments.train import ProgressFn, get_trainer, load_networks
from mesascope.levels.grid import Level
from mesascope.measures.scores import (
    normalised_score,
    policy_values,
    reference_values,
    system_action_probs,
    tabularize_levels,
)
from mesascope.optimizers.ppo import PPOConfig, make_train
from mesascope.properties import Thresholds
from mesascope.systems.policy import action_probs
from mesascope.types import MesascopeError

__all__ = ["ADVERSARIAL_SEED", "AdversarialConfig", "adversarial_run", "intended_scores", "search_levels"]

ADVERSARIAL_SEED = 29_000_029
"""Seeds the starting levels and the edits of the adversarial search (the same for every run)."""

@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of `mesascope adversarial`.

    Attributes:
        levels: Training levels each system's search starts from (and the size of its fine-tuning pool).
        rounds: Rounds of edits in the search.
        steps: Environment steps of PPO fine-tuning per system.
    """

    levels: int = 256
    rounds: int = 16
    steps: int = 200_000

    def validate(self) -> None:
        for name in ("levels", "rounds", "steps"):
            if getattr(self, name) < 1:
                raise MesascopeError(f"adversarial: --{name} must be at least 1; got {getattr(self, name)}")


def intended_scores(scenario: Any, levels: Level, policy: Callable[[jax.Array], jax.Array]) -> tuple[np.ndarray, np.ndarray]:
    """A system's exact intended regret `V* - V^pi` and normalised `J_intended` on each level.

    Args:
        scenario: A gridworld scenario.
        levels: `Level` batched `[L]`.
        policy: Observations `[B, *obs]` -> action probabilities `[B, A]`.

    Returns:
        `(regret, j)`, float64 `[L]` each.
    """
    tab = tabularize_levels(scenario.spec, levels)
    probs = system_action_probs(scenario.spec, levels, policy)
    intended = scenario.intended_objective
    w = jnp.asarray(intended.vector(scenario.feature_names))[None]
    reach = np.array([intended.reach])
    v_star, v_unif = reference_values(tab, w, scenario.spec.gamma, reach=reach)
    v_pi = policy_values(tab, probs, w, scenario.spec.gamma, reach=reach)
    regret = np.asarray(v_star - v_pi, np.float64)[:, 0]
    return regret, np.asarray(normalised_score(v_pi, v_star, v_unif), np.float64)[:, 0]


def search_levels(scenario: Any, policy: Callable[[jax.Array], jax.Array], config: AdversarialConfig,
                  key: jax.Array) -> tuple[Level, np.ndarray, np.ndarray]:
    """Hill-climb `config.levels` training levels towards the system's highest exact intended regret.

    Returns:
        `(levels, regret_start, regret_end)`: the adversarial levels batched `[L]` and each level's
        regret before and after the search (float64 `[L]`).
    """
    k_start, k_edit = jax.random.split(key)
    levels = scenario.sample_levels(k_start, config.levels, "train")
    regret, _ = intended_scores(scenario, levels, policy)
    start = regret.copy()
    edit = jax.jit(jax.vmap(scenario.mutate))
    for r in range(config.rounds):
        children = edit(jax.random.split(jax.random.fold_in(k_edit, r), config.levels), levels)
        child_regret, _ = intended_scores(scenario, children, policy)
        # Ties move too: a plateau of equal regret is crossed rather than stuck on.
        keep = child_regret >= regret
        levels = jax.tree_util.tree_map(
            lambda c, p: jnp.where(jnp.asarray(keep).reshape((-1,) + (1,) * (c.ndim - 1)), c, p), children, levels)
        regret = np.where(keep, child_regret, regret)
    return levels, start, regret


def _policy(network: Any) -> Callable[[jax.Array], jax.Array]:
    return lambda obs: action_probs(network, obs)


def adversarial_run(run_dir: Path, out: Path, config: AdversarialConfig = AdversarialConfig(),
                    audit: AuditConfig = AuditConfig(), thresholds: Thresholds = Thresholds(),
                    progress: ProgressFn = lambda stage, frac: None) -> dict[str, Any]:
    """Search, fine-tune and audit (see the module docstring); writes the run folder `out`.

    Returns:
        The comparison written to `out / "adversarial.json"`.

    Raises:
        MesascopeError: if `run_dir` is not a finished PPO run of a scenario with edits, has no
            audit.json, or `out` already holds a run.
    """
    from mesascope.experiments.run import _write_meta, load_run

    config.validate()
    run_dir, out = Path(run_dir), Path(out)
    meta, scenario = load_run(run_dir)
    if scenario.kind != "gridworld" or meta.get("optimizer", "ppo") != "ppo":
        raise MesascopeError(f"{run_dir}: adversarial fine-tuning continues PPO training; this run's optimizer is "
                             f"{meta.get('optimizer', scenario.kind)}")
    if scenario.mutate is None:
        raise MesascopeError(f"{meta['scenario']} declares no level edits (Scenario.mutate), so there is nothing to "
                             "search adversarial levels with")
    before_path = run_dir / "audit.json"
    if not before_path.exists():
        raise MesascopeError(f"{run_dir} has no audit.json; audit it first (mesascope audit {run_dir})")
    before = json.loads(before_path.read_text())
    if (out / "run.json").exists():
        raise MesascopeError(f"{out} already holds a run; choose another --out folder or delete it")
    base_config = get_trainer("ppo").from_json(meta["config"])
    n_audit = before.get("audit") or {}
    audit = AuditConfig(n_train=int(n_audit.get("n_train", audit.n_train)), n_deploy=int(n_audit.get("n_deploy", audit.n_deploy)))
    seeds = list(meta["seeds"])
    networks = load_networks(scenario, base_config, seeds, run_dir)

    searched = []
    for i, (seed, net) in enumerate(zip(seeds, networks)):
        progress("search", i / len(seeds))
        key = jax.random.fold_in(jax.random.key(ADVERSARIAL_SEED), seed)
        searched.append(search_levels(scenario, _policy(net), config, key))
    progress("search", 1.0)

    tuned_config = dataclasses.replace(base_config, total_timesteps=config.steps, level_pool=config.levels,
                                       curriculum="dr", stop_at_j_base=0.0)
    new_meta = {**meta, "config": dataclasses.asdict(tuned_config),
                "adversarial": {"from": str(run_dir), **dataclasses.asdict(config), "seed": ADVERSARIAL_SEED}}
    _write_meta(out, new_meta)
    progress("fine-tune", 0.0)
    params = _fine_tune(scenario, tuned_config, networks, [lv for lv, _, _ in searched], seeds, out)
    progress("fine-tune", 1.0)
    after = audit_run(out, audit, thresholds=thresholds)

    _, static = eqx.partition(networks[0], eqx.is_array)
    rows = []
    for i, seed in enumerate(seeds):
        levels, start, end = searched[i]
        tuned = eqx.combine(jax.tree_util.tree_map(lambda x: x[i], params), static)
        _, j_before = intended_scores(scenario, levels, _policy(networks[i]))
        _, j_after = intended_scores(scenario, levels, _policy(tuned))
        rows.append({
            "seed": seed,
            "search": {"regret_start": float(start.mean()), "regret_end": float(end.mean())},
            "before": _summary(before, i, float(j_before.mean())),
            "after": _summary(after, i, float(j_after.mean())),
        })
    result = {"from": str(run_dir), "config": dataclasses.asdict(config), "seeds": rows}
    (out / "adversarial.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _fine_tune(scenario: Any, config: PPOConfig, networks: list[Any], pools: list[Level], seeds: list[int],
               out: Path) -> Any:
    """PPO from each trained network on its own adversarial pool, all seeds in one vmapped program."""
    trainer = make_train(scenario, config)
    params = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[eqx.partition(n, eqx.is_array)[0] for n in networks])
    levels = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *pools)
    keys = jnp.stack([jax.random.fold_in(jax.random.key(ADVERSARIAL_SEED + 1), s) for s in seeds])
    state = jax.jit(jax.vmap(trainer.init))(keys, levels, params)
    state, metrics = jax.jit(jax.vmap(lambda ts: trainer.advance(ts, config.num_updates)))(state)
    (out / "systems").mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        eqx.tree_serialise_leaves(out / "systems" / f"seed-{seed}.eqx", jax.tree_util.tree_map(lambda x: x[i], state.params))
    np.savez(out / "training.npz", **{k: np.asarray(v) for k, v in metrics.items()})
    return state.params


def _summary(audit: dict[str, Any], i: int, j_targeted: float) -> dict[str, Any]:
    s = audit["systems"][i]
    m = s.get("measurements") or {}
    posterior = (((s.get("behavioral") or {}).get("deploy") or {}).get("goal_posterior") or {}).get("goals") or {}
    return {
        "j_intended_adversarial": j_targeted,
        "j_intended_deploy": s["scores"]["deploy"]["intended"],
        "j_base_train": s["scores"]["train"]["base"],
        "first_reached_deploy": s.get("first_reached", {}).get("deploy"),
        "goal_posterior_deploy": {g: v.get("posterior") for g, v in posterior.items()},
        "behavioral_objective": m.get("behavioral_objective"),
        "epic_behavioral_intended_deploy": m.get("epic_behavioral_intended_deploy"),
        "hubinger": ((s.get("verdicts") or {}).get("hubinger") or {}).get("label"),
    }
