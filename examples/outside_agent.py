"""A single-file JAX agent trained outside mesascope, then audited by it (CleanRL-style PPO).

The agent knows nothing of mesascope's internals: it trains through the Gymnasium environment
`mesascope/cheese-corner-v0` like any other environment, saves its parameters beside this file, and
exposes `policy(obs) -> probs`, the one function `mesascope audit-policy` needs::

    python examples/outside_agent.py --total-steps 50000                       # writes examples/outside_agent.npz
    mesascope audit-policy cheese-corner-v0 --policy examples/outside_agent.py:policy --out runs/outside-jax

Scenario parameters must match between training and audit (`--grid-size 5` here and `--param grid_size=5
--param maze_sizes=[5]` there), since they set the observation shape. `OUTSIDE_AGENT_PARAMS=path.npz`
points `policy` at parameters saved elsewhere.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mesascope.adapters import register_gymnasium_envs
from mesascope.scenarios import get_scenario

PARAMS_FILE = Path(__file__).with_suffix(".npz")
"""Where `train` results are saved and `policy` loads them from (unless OUTSIDE_AGENT_PARAMS is set)."""


# -- the network: a two-layer MLP actor and critic, plain JAX ------------------------------------------------


def init_params(key: jax.Array, obs_dim: int, n_actions: int, hidden: int = 64) -> dict[str, jax.Array]:
    """Orthogonal-ish initialisation (scaled normal); the actor's last layer small, as CleanRL does."""
    k = jax.random.split(key, 6)

    def dense(key: jax.Array, n_in: int, n_out: int, scale: float) -> jax.Array:
        return jax.random.normal(key, (n_in, n_out)) * scale / np.sqrt(n_in)

    return {
        "w1": dense(k[0], obs_dim, hidden, np.sqrt(2)), "b1": jnp.zeros(hidden),
        "w2": dense(k[1], hidden, hidden, np.sqrt(2)), "b2": jnp.zeros(hidden),
        "wa": dense(k[2], hidden, n_actions, 0.01), "ba": jnp.zeros(n_actions),
        "wv": dense(k[3], hidden, 1, 1.0), "bv": jnp.zeros(1),
    }


def forward(params: dict[str, jax.Array], obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Observations `[B, *obs_shape]` -> (logits `[B, A]`, values `[B]`)."""
    x = obs.reshape(obs.shape[0], -1)
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    h = jnp.tanh(h @ params["w2"] + params["b2"])
    return h @ params["wa"] + params["ba"], (h @ params["wv"] + params["bv"])[:, 0]


@jax.jit
def action_probs(params: dict[str, jax.Array], obs: jax.Array) -> jax.Array:
    """Action probabilities `[B, A]`."""
    return jax.nn.softmax(forward(params, obs)[0], axis=-1)


# -- what mesascope calls ----------------------------------------------------------------------------------

_loaded: dict[str, Any] = {}


def policy(obs: np.ndarray) -> np.ndarray:
    """The trained agent: observations float32 `[B, *obs_shape]` -> action probabilities `[B, A]`."""
    path = Path(os.environ.get("OUTSIDE_AGENT_PARAMS", PARAMS_FILE))
    if str(path) not in _loaded:
        with np.load(path) as saved:
            _loaded[str(path)] = {k: jnp.asarray(v) for k, v in saved.items()}
    return np.asarray(action_probs(_loaded[str(path)], jnp.asarray(obs)))


# -- PPO through Gymnasium ---------------------------------------------------------------------------------


def make_envs(n: int, scenario_params: dict[str, Any], seed: int) -> list[gymnasium.Env]:
    register_gymnasium_envs()
    scenario = get_scenario("cheese-corner-v0", **scenario_params)
    envs = [gymnasium.make("mesascope/cheese-corner-v0", scenario=scenario) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed * 1000 + i)
    return envs


def train(
    total_steps: int = 50_000,
    *,
    scenario_params: dict[str, Any] | None = None,
    seed: int = 0,
    num_envs: int = 8,
    num_steps: int = 64,
    epochs: int = 4,
    minibatches: int = 4,
    lr: float = 2.5e-3,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
    clip: float = 0.2,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Train with PPO on the train split; returns the parameters (numpy) and a few statistics."""
    envs = make_envs(num_envs, scenario_params or {}, seed)
    obs_shape = envs[0].observation_space.shape
    n_actions = int(envs[0].action_space.n)
    key = jax.random.key(seed)
    key, k_init = jax.random.split(key)
    params = init_params(k_init, int(np.prod(obs_shape)), n_actions)
    n_updates = max(1, total_steps // (num_envs * num_steps))
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(optax.linear_schedule(lr, 0.0, n_updates * epochs * minibatches)))
    opt_state = tx.init(params)

    def loss_fn(p: Any, obs: jax.Array, act: jax.Array, logp_old: jax.Array, adv: jax.Array, ret: jax.Array) -> jax.Array:
        logits, value = forward(p, obs)
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, act[:, None], axis=1)[:, 0]
        ratio = jnp.exp(logp - logp_old)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv).mean()
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
        return pg + vf_coef * ((value - ret) ** 2).mean() - ent_coef * entropy

    @jax.jit
    def update(p: Any, s: Any, batch: tuple[jax.Array, ...]) -> tuple[Any, Any]:
        grads = jax.grad(loss_fn)(p, *batch)
        changes, s = tx.update(grads, s, p)
        return optax.apply_updates(p, changes), s

    @jax.jit
    def act(p: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        logits, value = forward(p, obs)
        a = jax.random.categorical(key, logits)
        return a, jax.nn.log_softmax(logits)[jnp.arange(a.shape[0]), a], value

    obs = np.stack([env.reset()[0] for env in envs])
    returns, episode_return = [], np.zeros(num_envs)
    start = time.perf_counter()
    for _ in range(n_updates):
        buf = {k: [] for k in ("obs", "act", "logp", "value", "reward", "done")}
        for _ in range(num_steps):
            key, k_act = jax.random.split(key)
            a, logp, value = (np.asarray(x) for x in act(params, jnp.asarray(obs), k_act))
            nxt, rew, done = [], np.zeros(num_envs), np.zeros(num_envs)
            for i, env in enumerate(envs):
                o, r, term, trunc, _ = env.step(int(a[i]))
                episode_return[i] += r
                if term or trunc:  # reset at once; a truncated episode is treated as ended (short horizon)
                    returns.append(episode_return[i])
                    episode_return[i] = 0.0
                    o, _ = env.reset()
                nxt.append(o)
                rew[i], done[i] = r, float(term or trunc)
            for name, x in zip(buf, (obs, a, logp, value, rew, done)):
                buf[name].append(x)
            obs = np.stack(nxt)
        _, last_value = forward(params, jnp.asarray(obs))
        b = {k: np.stack(v) for k, v in buf.items()}  # [T, N]
        adv, gae, next_value = np.zeros_like(b["reward"]), 0.0, np.asarray(last_value)
        for t in reversed(range(num_steps)):  # generalised advantage estimation
            alive = 1.0 - b["done"][t]
            delta = b["reward"][t] + gamma * next_value * alive - b["value"][t]
            gae = delta + gamma * gae_lambda * alive * gae
            adv[t], next_value = gae, b["value"][t]
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in b.items()}
        ret = (adv + b["value"]).reshape(-1)
        n = ret.shape[0]
        for _ in range(epochs):
            key, k_perm = jax.random.split(key)
            perm = np.asarray(jax.random.permutation(k_perm, n))
            for mb in np.array_split(perm, minibatches):
                batch = (jnp.asarray(flat["obs"][mb]), jnp.asarray(flat["act"][mb]), jnp.asarray(flat["logp"][mb]),
                         jnp.asarray(adv.reshape(-1)[mb]), jnp.asarray(ret[mb]))
                params, opt_state = update(params, opt_state, batch)
    seconds = time.perf_counter() - start
    tail = returns[-max(1, len(returns) // 10):] if returns else [float("nan")]
    stats = {"steps": n_updates * num_envs * num_steps, "seconds": seconds, "final_return": float(np.mean(tail))}
    return {k: np.asarray(v) for k, v in params.items()}, stats


def save(params: dict[str, np.ndarray], path: Path | str = PARAMS_FILE) -> Path:
    np.savez(path, **params)
    _loaded.pop(str(path), None)
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total-steps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-size", type=int, default=None, help="cheese-corner's grid_size (maze_sizes follows it)")
    parser.add_argument("--save", type=Path, default=PARAMS_FILE)
    args = parser.parse_args()
    scenario_params = {"grid_size": args.grid_size, "maze_sizes": (args.grid_size,)} if args.grid_size else {}
    params, stats = train(args.total_steps, scenario_params=scenario_params, seed=args.seed)
    print(f"trained {stats['steps']} steps in {stats['seconds']:.1f} s; mean return of the last episodes "
          f"{stats['final_return']:.3f}; saved to {save(params, args.save)}")


if __name__ == "__main__":
    main()
