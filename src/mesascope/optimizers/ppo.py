"""Proximal Policy Optimization as one pure JAX program.

`make_train(scenario, config)` returns `train(key) -> (params, metrics)`, a pure function of its key:
the whole run (level pool generation, rollouts, GAE, clipped-surrogate updates) is jitted, and
`jax.vmap(train)` over keys trains several seeds in one program. The base optimizer only ever sees the
scenario's base objective on train levels (SPEC.md section 1).

Environment: a pool of `level_pool` train levels is drawn once from the key; every episode starts on a
random pool level, as procgen does with a fixed number of training levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from mesascope.levels.grid import Level, State, observe, reset, step
from mesascope.scenarios.base import Scenario
from mesascope.systems.policy import NetworkConfig, make_actor_critic

__all__ = ["PPOConfig", "PRESETS", "make_train", "ppo_config"]


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (defaults follow common procgen-style settings, scaled down).

    Attributes:
        total_timesteps: Environment steps per seed.
        num_envs: Parallel environments.
        num_steps: Steps per environment per update (rollout length).
        update_epochs: Passes over each rollout.
        num_minibatches: Minibatches per epoch.
        lr: Adam learning rate (linearly annealed to 0 when `anneal_lr`).
        gamma: Discount for GAE (the level's own discount is used for exact scores).
        gae_lambda: GAE lambda.
        clip_eps: PPO clip range.
        ent_coef: Entropy bonus.
        vf_coef: Value loss weight.
        max_grad_norm: Global gradient clipping.
        level_pool: Train levels generated once per seed.
        network: Policy architecture.
        stop_at_j_base: Stop a seed once its exact `J_base` on a fixed sample of training levels reaches
            this target (`mesascope.experiments.train.train_systems`); 0 (the default) never checks.
        competence_every: Updates between two checks of `J_base` (only when `stop_at_j_base > 0`).
        competence_levels: Training levels in the fixed sample the check is exact on.
    """

    total_timesteps: int = 1_000_000
    num_envs: int = 64
    num_steps: int = 64
    update_epochs: int = 3
    num_minibatches: int = 4
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    anneal_lr: bool = True
    level_pool: int = 4096
    network: NetworkConfig = field(default_factory=NetworkConfig)
    stop_at_j_base: float = 0.0
    competence_every: int = 16
    competence_levels: int = 256

    @property
    def num_updates(self) -> int:
        return max(1, self.total_timesteps // (self.num_envs * self.num_steps))

    @property
    def minibatch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps


PRESETS: dict[str, PPOConfig] = {
    # Tuned on this project's 2-core CPU machines: 4 seeds of cheese-corner-v0 train in about a minute
    # and solve their training mazes (J_base >= 0.9). Small rollouts (64 x 16) mean many updates per
    # step budget, which mattered more than batch size; a large level pool avoids memorising mazes.
    "fast": PPOConfig(
        total_timesteps=1_000_000, num_envs=64, num_steps=16, ent_coef=0.001, level_pool=65536
    ),
    # For bigger mazes (cheese-corner-large-v0) and GPUs: wider network, ten times the steps.
    "full": PPOConfig(
        total_timesteps=10_000_000,
        num_envs=64,
        num_steps=16,
        ent_coef=0.001,
        level_pool=65536,
        network=NetworkConfig(kind="mlp", hidden=256),
    ),
}


def ppo_config(preset: str, **overrides: Any) -> PPOConfig:
    """A preset with some fields replaced (`ValueError` naming the valid presets / fields)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


class EnvState(NamedTuple):
    level_index: jax.Array  # int32 scalar
    state: State
    t: jax.Array  # int32 scalar, steps since reset


class TrainState(NamedTuple):
    """Everything a run carries between updates (a pytree; batched over seeds under vmap)."""

    params: Any
    opt_state: Any
    env_states: EnvState
    ep_ret: jax.Array
    ep_len: jax.Array
    key: jax.Array
    levels: Level


class PPOTrainer(NamedTuple):
    """The pieces of one PPO program.

    Attributes:
        init: `key -> TrainState`.
        advance: `(TrainState, n_updates) -> (TrainState, metrics)`; `n_updates` is static. Running
            `advance` in chunks gives the same result as one call and lets a caller show progress.
        train: `key -> (params, metrics)`, the whole run as one pure function.
        static: The non-array part of the network (`eqx.combine(params, static)` rebuilds it).
        config: The configuration.
    """

    init: Callable[[jax.Array], TrainState]
    advance: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[Any, dict[str, jax.Array]]]
    static: Any
    config: PPOConfig


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


def _take(levels: Level, i: jax.Array) -> Level:
    return jax.tree_util.tree_map(lambda x: x[i], levels)


def make_train(scenario: Scenario, config: PPOConfig) -> PPOTrainer:
    """Build the pure training program for one scenario and configuration.

    Returns:
        A `PPOTrainer`. `trainer.train(key) -> (params, metrics)`: `params` is the array part of the
        trained `ActorCritic` (`eqx.combine(params, trainer.static)` rebuilds it), `metrics` a dict of
        float32 `[num_updates]` curves (`episode_return`, `episode_length`, `entropy`, `value_loss`).
        Vmap `init`/`advance`/`train` over keys to train several seeds in one program.
    """
    spec = scenario.spec
    w_base = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))
    cfg = config
    template = make_actor_critic(jax.random.key(0), spec.obs_shape, spec.n_actions, cfg.network)
    _, static = eqx.partition(template, eqx.is_array)

    sched = (
        optax.linear_schedule(cfg.lr, 0.0, cfg.num_updates * cfg.update_epochs * cfg.num_minibatches)
        if cfg.anneal_lr
        else cfg.lr
    )
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(sched, eps=1e-5))

    def apply(params, obs):
        return jax.vmap(eqx.combine(params, static))(obs)

    def env_reset(key, levels):
        idx = jax.random.randint(key, (), 0, cfg.level_pool)
        return EnvState(idx, reset(_take(levels, idx)), jnp.int32(0))

    def env_step(key, levels, es: EnvState, action):
        level = _take(levels, es.level_index)
        state, phi = step(spec, level, es.state, action)
        reward = phi @ w_base
        t = es.t + 1
        done = state.done | (t >= spec.max_steps)
        fresh = env_reset(key, levels)
        es = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, EnvState(es.level_index, state, t))
        return es, reward, done

    def env_obs(levels, es: EnvState):
        return observe(spec, _take(levels, es.level_index), es.state)

    def init(key: jax.Array) -> TrainState:
        k_levels, k_init, k_reset, key = jax.random.split(key, 4)
        levels = jax.vmap(lambda k: scenario.make_level(k, "train"))(jax.random.split(k_levels, cfg.level_pool))
        model = make_actor_critic(k_init, spec.obs_shape, spec.n_actions, cfg.network)
        params, _ = eqx.partition(model, eqx.is_array)
        opt_state = tx.init(params)
        env_states = jax.vmap(lambda k: env_reset(k, levels))(jax.random.split(k_reset, cfg.num_envs))
        zeros = jnp.zeros(cfg.num_envs)
        return TrainState(params, opt_state, env_states, zeros, zeros.astype(jnp.int32), key, levels)

    def advance(ts: TrainState, n_updates: int) -> tuple[TrainState, dict[str, jax.Array]]:
        levels = ts.levels

        def rollout_step(carry, _):
            params, env_states, ep_ret, ep_len, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            obs = jax.vmap(env_obs, in_axes=(None, 0))(levels, env_states)
            logits, value = apply(params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jax.nn.log_softmax(logits)[jnp.arange(cfg.num_envs), action]
            env_states, reward, done = jax.vmap(env_step, in_axes=(0, None, 0, 0))(
                jax.random.split(k_env, cfg.num_envs), levels, env_states, action
            )
            ep_ret = ep_ret + reward
            ep_len = ep_len + 1
            finished = (done, ep_ret, ep_len)
            ep_ret = jnp.where(done, 0.0, ep_ret)
            ep_len = jnp.where(done, 0, ep_len)
            return (params, env_states, ep_ret, ep_len, key), (Transition(obs, action, log_prob, value, reward, done), finished)

        def gae(traj: Transition, last_value):
            def body(carry, t: Transition):
                adv, next_value = carry
                nonterminal = 1.0 - t.done
                delta = t.reward + cfg.gamma * next_value * nonterminal - t.value
                adv = delta + cfg.gamma * cfg.gae_lambda * nonterminal * adv
                return (adv, t.value), adv

            _, advantages = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
            return advantages, advantages + traj.value

        def loss_fn(params, batch, advantages, targets):
            logits, value = apply(params, batch.obs)
            logp_all = jax.nn.log_softmax(logits)
            logp = jnp.take_along_axis(logp_all, batch.action[:, None], axis=-1)[:, 0]
            ratio = jnp.exp(logp - batch.log_prob)
            adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
            v_clipped = batch.value + jnp.clip(value - batch.value, -cfg.clip_eps, cfg.clip_eps)
            v_loss = 0.5 * jnp.maximum((value - targets) ** 2, (v_clipped - targets) ** 2).mean()
            entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
            return pg + cfg.vf_coef * v_loss - cfg.ent_coef * entropy, (v_loss, entropy)

        def update(carry, _):
            params, opt_state, env_states, ep_ret, ep_len, key = carry
            (params, env_states, ep_ret, ep_len, key), (traj, finished) = jax.lax.scan(
                rollout_step, (params, env_states, ep_ret, ep_len, key), None, cfg.num_steps
            )
            last_obs = jax.vmap(env_obs, in_axes=(None, 0))(levels, env_states)
            _, last_value = apply(params, last_obs)
            advantages, targets = gae(traj, last_value)
            flat = lambda x: x.reshape((cfg.num_envs * cfg.num_steps,) + x.shape[2:])  # noqa: E731
            data = jax.tree_util.tree_map(flat, (traj, advantages, targets))

            def epoch(carry, _):
                params, opt_state, key = carry
                key, sub = jax.random.split(key)
                perm = jax.random.permutation(sub, cfg.num_envs * cfg.num_steps)
                shuffled = jax.tree_util.tree_map(
                    lambda x: x[perm].reshape((cfg.num_minibatches, cfg.minibatch_size) + x.shape[1:]), data
                )

                def minibatch(carry, mb):
                    params, opt_state = carry
                    batch, adv, tgt = mb
                    (_, (v_loss, ent)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, adv, tgt)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), (v_loss, ent)

                (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), shuffled)
                return (params, opt_state, key), aux

            (params, opt_state, key), (v_loss, ent) = jax.lax.scan(
                epoch, (params, opt_state, key), None, cfg.update_epochs
            )
            done, rets, lens = finished
            n_done = jnp.maximum(done.sum(), 1)
            metrics = {
                "episode_return": jnp.where(done, rets, 0.0).sum() / n_done,
                "episode_length": jnp.where(done, lens, 0).sum() / n_done,
                "entropy": ent.mean(),
                "value_loss": v_loss.mean(),
            }
            return (params, opt_state, env_states, ep_ret, ep_len, key), metrics

        carry = (ts.params, ts.opt_state, ts.env_states, ts.ep_ret, ts.ep_len, ts.key)
        carry, metrics = jax.lax.scan(update, carry, None, n_updates)
        return TrainState(*carry, levels), metrics

    def train(key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        ts, metrics = advance(init(key), cfg.num_updates)
        return ts.params, metrics

    return PPOTrainer(init=init, advance=advance, train=train, static=static, config=cfg)
