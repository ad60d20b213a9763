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
from mesascope.levels.tabular import observe_all, tabularize
from mesascope.measures.scores import start_regret
from mesascope.optimizers.curricula import (
    CURRICULA,
    PLR_SCORES,
    LevelBuffer,
    Reservoir,
    empty_buffer,
    empty_reservoir,
    insert_levels,
    replay_weights,
    reservoir_add,
    score_kind,
)
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
        curriculum: How episodes' levels are chosen (`mesascope.optimizers.curricula`): `dr` (uniform
            over the pool), `plr` (prioritised level replay on an estimated score), `exact-plr` (on
            exact regret under the base objective) or `accel` (exact-plr whose replayed levels are also
            edited, `Scenario.mutate`).
        plr_score: The estimated score of `plr`: `pvl` (positive value loss) or `maxmc`.
        replay_prob: Probability that an episode starts on a buffer level (PLR curricula).
        buffer_size: Levels the PLR buffer holds.
        rank_temperature: Temperature of rank prioritisation (smaller: sharper).
        staleness_coef: Weight of staleness in the replay distribution.
        min_fill: Share of the buffer that must be filled before levels are replayed.
        robust: Robust PLR: gradients only on replayed levels (fresh levels are only scored).
        accel_edits: Edits from a replayed level to each of its ACCEL children.
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
    curriculum: str = "dr"
    plr_score: str = "pvl"
    replay_prob: float = 0.5
    buffer_size: int = 1024
    rank_temperature: float = 0.3
    staleness_coef: float = 0.3
    min_fill: float = 0.5
    robust: bool = True
    accel_edits: int = 3

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
    level: Level  # the level being played
    level_key: jax.Array  # int32 scalar, its index in the training pool
    replayed: jax.Array  # bool scalar, drawn from the PLR buffer
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
    curriculum: CurriculumState


class CurriculumState(NamedTuple):
    """What the curriculum carries between updates.

    Attributes:
        buffer: The PLR level buffer (None under `dr`).
        adv_sum: float32 `[E]`, each environment's running sum of `max(A_t, 0)` over its episode so far.
        value_sum: float32 `[E]`, its running sum of value predictions.
        seen: A uniform sample of the levels of the training episodes so far (`Reservoir`), to measure
            what the curriculum showed (`mesascope.experiments.train.shown_separating`).
        key: PRNG key of the curriculum's own draws (ACCEL's edits, the reservoir), apart from the
            training key so that `dr` draws exactly what it always drew.
        updates: int32 scalar, updates done.
    """

    buffer: LevelBuffer | None
    adv_sum: jax.Array
    value_sum: jax.Array
    seen: Reservoir
    key: jax.Array
    updates: jax.Array


class PPOTrainer(NamedTuple):
    """The pieces of one PPO program.

    Attributes:
        init: `(key, levels=None, params=None) -> TrainState`: a fresh network on a fresh pool of
            `level_pool` train levels, or, given them, on a pool of `level_pool` given levels (batched) and
            from given network parameters (fine-tuning, `mesascope.experiments.adversarial`).
        advance: `(TrainState, n_updates) -> (TrainState, metrics)`; `n_updates` is static. Running
            `advance` in chunks gives the same result as one call and lets a caller show progress.
        train: `key -> (params, metrics)`, the whole run as one pure function.
        static: The non-array part of the network (`eqx.combine(params, static)` rebuilds it).
        config: The configuration.
    """

    init: Callable[..., TrainState]
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
    replayed: jax.Array


SEEN_LEVELS = 256
"""Levels of the training episodes a PLR curriculum keeps a uniform sample of (`CurriculumState.seen`)."""


def _take(levels: Level, i: jax.Array) -> Level:
    return jax.tree_util.tree_map(lambda x: x[i], levels)


def make_train(scenario: Scenario, config: PPOConfig) -> PPOTrainer:
    """Build the pure training program for one scenario and configuration.

    Returns:
        A `PPOTrainer`. `trainer.train(key) -> (params, metrics)`: `params` is the array part of the
        trained `ActorCritic` (`eqx.combine(params, trainer.static)` rebuilds it), `metrics` a dict of
        float32 `[num_updates]` curves (`episode_return`, `episode_length`, `entropy`, `value_loss`;
        under a PLR curriculum also `replay_share`, `buffer_fill` and `buffer_mean_score`).
        Vmap `init`/`advance`/`train` over keys to train several seeds in one program.

    Raises:
        ValueError: on an unknown curriculum or PLR score.
    """
    spec = scenario.spec
    w_base = jnp.asarray(scenario.base_objective.vector(scenario.feature_names))
    reach_base = bool(scenario.base_objective.reach)
    cfg = config
    if cfg.curriculum not in CURRICULA:
        raise ValueError(f"unknown curriculum {cfg.curriculum!r}; choose one of: {', '.join(CURRICULA)}")
    if cfg.plr_score not in PLR_SCORES:
        raise ValueError(f"unknown plr_score {cfg.plr_score!r}; choose one of: {', '.join(PLR_SCORES)}")
    plr = cfg.curriculum != "dr"
    accel = cfg.curriculum == "accel"
    if accel and scenario.mutate is None:
        raise ValueError(f"curriculum accel edits levels, and {scenario.id or 'this scenario'} declares no edits "
                         "(Scenario.mutate); choose dr, plr or exact-plr")
    scoring = score_kind(cfg.curriculum, cfg.plr_score)
    # Robust PLR learns only from replayed levels; plain PPO (and PLR without `robust`) from every step.
    masked = plr and cfg.robust
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

    def env_reset(key, levels, replay=None):
        idx = jax.random.randint(key, (), 0, cfg.level_pool)
        level, level_key, replayed = _take(levels, idx), idx, jnp.bool_(False)
        if replay is not None:
            buf, cdf, can_replay = replay
            k_coin, k_pick = jax.random.split(jax.random.fold_in(key, 1))
            replayed = can_replay & (jax.random.uniform(k_coin) < cfg.replay_prob)
            # Inverse-CDF draw: one uniform per reset (a categorical would draw one Gumbel per slot).
            j = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(k_pick) * cdf[-1], side="right"), cfg.buffer_size - 1)
            level = jax.tree_util.tree_map(lambda b, f: jnp.where(replayed, b[j], f), buf.levels, level)
            level_key = jnp.where(replayed, buf.keys[j], idx)
        return EnvState(level, level_key, replayed, reset(level), jnp.int32(0))

    def env_step(key, levels, replay, es: EnvState, action):
        state, phi = step(spec, es.level, es.state, action)
        reward = phi @ w_base
        t = es.t + 1
        done = state.done | (t >= spec.max_steps)
        fresh = env_reset(key, levels, replay)
        played = es._replace(state=state, t=t)
        es = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, played)
        return es, reward, done, played

    def env_obs(es: EnvState):
        return observe(spec, es.level, es.state)

    def init(key: jax.Array, levels: Level | None = None, params: Any = None) -> TrainState:
        k_levels, k_init, k_reset, key = jax.random.split(key, 4)
        if levels is None:
            levels = jax.vmap(lambda k: scenario.make_level(k, "train"))(jax.random.split(k_levels, cfg.level_pool))
        if params is None:
            model = make_actor_critic(k_init, spec.obs_shape, spec.n_actions, cfg.network)
            params, _ = eqx.partition(model, eqx.is_array)
        opt_state = tx.init(params)
        env_states = jax.vmap(lambda k: env_reset(k, levels))(jax.random.split(k_reset, cfg.num_envs))
        zeros = jnp.zeros(cfg.num_envs)
        one = _take(levels, 0)
        curriculum = CurriculumState(empty_buffer(one, cfg.buffer_size) if plr else None, zeros, zeros,
                                     empty_reservoir(one, SEEN_LEVELS), jax.random.fold_in(k_levels, 1), jnp.int32(0))
        return TrainState(params, opt_state, env_states, zeros, zeros.astype(jnp.int32), key, levels, curriculum)

    def regret_of(params, levels: Level) -> jax.Array:
        """float32 `[n]`: each level's exact regret `V* - V^pi` at its start under the base objective.

        The audit's regret (`mesascope.measures.scores`): discounted values solved on the level's tabular
        view, `V*` by value iteration and `V^pi` by policy evaluation of the current network.
        """
        tab = jax.vmap(lambda lv: tabularize(spec, lv))(levels)
        obs = jax.vmap(lambda lv: observe_all(spec, lv))(levels)  # [n, S, *obs_shape]
        logits, _ = apply(params, obs.reshape((-1,) + obs.shape[2:]))
        probs = jax.nn.softmax(logits).reshape(obs.shape[:2] + (spec.n_actions,))
        return start_regret(tab.next_state, tab.features, tab.start, tab.terminal, w_base, reach_base, probs, spec.gamma)

    def record_episodes(params, cur: CurriculumState, traj: Transition, advantages, ep_rets, ep_lens, last_played):
        """Record each environment's last episode that ended in this rollout: in the reservoir of levels
        played, and under PLR with its score in the buffer (and, under ACCEL, an edited child of it)."""
        # Running sums over each episode, carried across rollouts: an episode's score is its mean over all
        # of its steps, also those taken before this rollout.
        def acc(carry, x):
            adv_sum, value_sum = carry
            a, v, d = x
            adv_sum, value_sum = adv_sum + jnp.maximum(a, 0.0), value_sum + v
            out = (adv_sum, value_sum)
            return (jnp.where(d, 0.0, adv_sum), jnp.where(d, 0.0, value_sum)), out

        (adv_sum, value_sum), (adv_run, value_run) = jax.lax.scan(
            acc, (cur.adv_sum, cur.value_sum), (advantages, traj.value, traj.done)
        )
        t = jnp.arange(cfg.num_steps)[:, None]
        last = jnp.where(traj.done, t, -1).max(0)  # [E], the step of the last episode end, -1 if none
        ended = last >= 0
        at = jnp.maximum(last, 0)
        pick = lambda x: jnp.take_along_axis(x, at[None], 0)[0]  # noqa: E731
        n = jnp.maximum(pick(ep_lens), 1).astype(jnp.float32)
        ret, mean_value = pick(ep_rets), pick(value_run) / n
        k_edit, k_seen = jax.random.split(jax.random.fold_in(cur.key, cur.updates))
        seen = reservoir_add(cur.seen, k_seen, last_played.level, ended)
        cur = cur._replace(adv_sum=adv_sum, value_sum=value_sum, seen=seen, updates=cur.updates + 1)
        if not plr:
            return cur
        if scoring == "regret":
            score = regret_of(params, last_played.level)
        else:
            score = pick(adv_run) / n  # pvl (maxmc computes its score from the buffer's record)
        buf = insert_levels(cur.buffer, last_played.level, last_played.level_key, score, ret, mean_value, ended,
                            maxmc=scoring == "maxmc")
        if accel:
            # ACCEL: each finished episode on a replayed level gives the buffer an edited child of it, with
            # a key no pool level has (the pool's indices end at level_pool).
            def child(k, level):
                for k_one in jax.random.split(k, cfg.accel_edits):
                    level = scenario.mutate(k_one, level)
                return level

            children = jax.vmap(child)(jax.random.split(k_edit, cfg.num_envs), last_played.level)
            child_keys = cfg.level_pool + buf.clock * cfg.num_envs + jnp.arange(cfg.num_envs, dtype=jnp.int32)
            buf = insert_levels(buf, children, child_keys, regret_of(params, children), jnp.full_like(ret, -jnp.inf),
                                jnp.zeros_like(ret), ended & last_played.replayed)
        return cur._replace(buffer=buf._replace(clock=buf.clock + 1))

    def advance(ts: TrainState, n_updates: int) -> tuple[TrainState, dict[str, jax.Array]]:
        levels = ts.levels

        def rollout_step(carry, _):
            params, env_states, ep_ret, ep_len, key, replay, last_played = carry
            key, k_act, k_env = jax.random.split(key, 3)
            obs = jax.vmap(env_obs)(env_states)
            logits, value = apply(params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jax.nn.log_softmax(logits)[jnp.arange(cfg.num_envs), action]
            replayed = env_states.replayed
            env_states, reward, done, played = jax.vmap(env_step, in_axes=(0, None, None, 0, 0))(
                jax.random.split(k_env, cfg.num_envs), levels, replay, env_states, action
            )
            ep_ret = ep_ret + reward
            ep_len = ep_len + 1
            finished = (done, ep_ret, ep_len)
            ep_ret = jnp.where(done, 0.0, ep_ret)
            ep_len = jnp.where(done, 0, ep_len)
            last_played = jax.tree_util.tree_map(
                lambda p, q: jnp.where(done.reshape(done.shape + (1,) * (p.ndim - 1)), p, q), played, last_played
            )
            transition = Transition(obs, action, log_prob, value, reward, done, replayed)
            return (params, env_states, ep_ret, ep_len, key, replay, last_played), (transition, finished)

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
            v_clipped = batch.value + jnp.clip(value - batch.value, -cfg.clip_eps, cfg.clip_eps)
            entropy_each = -(jnp.exp(logp_all) * logp_all).sum(-1)
            if masked:
                # Robust PLR: only transitions on replayed levels carry gradient; means are over those.
                w = batch.replayed.astype(jnp.float32)
                n = jnp.maximum(w.sum(), 1.0)
                mean = lambda x: (w * x).sum() / n  # noqa: E731
                mu = mean(advantages)
                adv = (advantages - mu) / (jnp.sqrt(mean((advantages - mu) ** 2)) + 1e-8)
            else:
                mean = jnp.mean
                adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            pg = -mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv))
            v_loss = 0.5 * mean(jnp.maximum((value - targets) ** 2, (v_clipped - targets) ** 2))
            entropy = mean(entropy_each)
            return pg + cfg.vf_coef * v_loss - cfg.ent_coef * entropy, (v_loss, entropy)

        def update(carry, _):
            params, opt_state, env_states, ep_ret, ep_len, key, cur = carry
            replay = None
            if plr:
                buf = cur.buffer
                can_replay = buf.size >= max(1, int(cfg.min_fill * cfg.buffer_size))
                cdf = jnp.cumsum(replay_weights(buf, cfg.rank_temperature, cfg.staleness_coef))
                replay = (buf, cdf, can_replay)
            last_played = env_states
            (params, env_states, ep_ret, ep_len, key, _, last_played), (traj, finished) = jax.lax.scan(
                rollout_step, (params, env_states, ep_ret, ep_len, key, replay, last_played), None, cfg.num_steps
            )
            last_obs = jax.vmap(env_obs)(env_states)
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
            cur = record_episodes(params, cur, traj, advantages, rets, lens, last_played)
            if plr:
                buf = cur.buffer
                filled = jnp.arange(cfg.buffer_size) < buf.size
                metrics |= {
                    "replay_share": traj.replayed.mean(),
                    "buffer_fill": buf.size / cfg.buffer_size,
                    "buffer_mean_score": jnp.where(filled, buf.scores, 0.0).sum() / jnp.maximum(buf.size, 1),
                }
            return (params, opt_state, env_states, ep_ret, ep_len, key, cur), metrics

        carry = (ts.params, ts.opt_state, ts.env_states, ts.ep_ret, ts.ep_len, ts.key, ts.curriculum)
        carry, metrics = jax.lax.scan(update, carry, None, n_updates)
        return TrainState(*carry[:6], levels, carry[6]), metrics

    def train(key: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        ts, metrics = advance(init(key), cfg.num_updates)
        return ts.params, metrics

    return PPOTrainer(init=init, advance=advance, train=train, static=static, config=cfg)
