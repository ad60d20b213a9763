"""Environment steps/s: mesascope's vectorised levels against Minigrid through Gymnasium.

mesascope: `jit(vmap(step))` over a batch of cheese-corner-v0 levels (4096 by default), `lax.scan` over
time, random actions drawn up front. Every simulated step is a live step: an environment whose episode
ends is put back at its level's start (a `where`, as PPO's auto-reset does), so no absorbing no-op steps
are counted. Two variants are timed: `step` alone, and `step` + `observe` (the egocentric symbolic
observation a policy reads). The latter is the like-for-like comparison with a Gymnasium `env.step`, which
always builds an observation; it is the headline ratio.

Peer: `MiniGrid-SimpleCrossingS9N1-v0` through `gymnasium.make`, random navigation actions (turn left,
turn right, forward) drawn up front, stepped in a Python loop with `reset` when an episode ends; and the
same env in a `gymnasium.vector.SyncVectorEnv`. Why it is comparable: a 9x9 wall grid with an agent
that must navigate through a gap in a wall to a single goal square that ends the episode (cheese-corner-v0
is a 7x7 perfect maze with a single cheese square that ends the episode). Minigrid's step cost is
dominated by per-step Python work (the 7x7 egocentric view), not by the grid size, and mesascope is also
timed on a 9x9 variant of cheese-corner so the sizes match exactly.

Run alone: `.venv/bin/python benchmarks/bench_env.py`.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np

import mesascope  # noqa: F401  (sets XLA_FLAGS before JAX initialises)
import jax
import jax.numpy as jnp

from mesascope.levels import observe, reset, step
from mesascope.scenarios import get_scenario

from _common import PeerMissing, fmt_rate, rate_summary, require, timed

GOAL = 500.0
MINIGRID_ID = "MiniGrid-SimpleCrossingS9N1-v0"


def make_rollout(spec, with_obs: bool):
    """A jitted `(levels, states, actions[T, L]) -> (states, checksum, episodes)`."""

    def where_done(done, a, b):
        return jax.tree_util.tree_map(lambda x, y: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)), x, y), a, b)

    @jax.jit
    def rollout(levels, states, actions):
        starts = jax.vmap(reset)(levels)

        def body(carry, act):
            states, acc, episodes = carry
            nxt, phi = jax.vmap(partial(step, spec))(levels, states, act)
            done = nxt.done
            nxt = where_done(done, starts, nxt)
            acc = acc + phi.sum()
            if with_obs:
                acc = acc + jax.vmap(partial(observe, spec))(levels, nxt).sum()
            return (nxt, acc, episodes + done.sum()), None

        (states, acc, episodes), _ = jax.lax.scan(body, (states, jnp.float32(0), jnp.int32(0)), actions)
        return states, acc, episodes

    return rollout


class MesascopeEnv:
    """One mesascope contender: a batch of levels, compiled once, timed per call."""

    def __init__(self, scenario, n_levels: int, n_steps: int, with_obs: bool, seed: int = 0):
        key = jax.random.key(seed)
        k_levels, k_act = jax.random.split(key)
        self.spec = scenario.spec
        self.levels = scenario.sample_levels(k_levels, n_levels, "train")
        self.states = jax.vmap(reset)(self.levels)
        self.actions = jax.random.randint(k_act, (n_steps, n_levels), 0, 4, dtype=jnp.int32)
        self.rollout = make_rollout(self.spec, with_obs)
        self.steps = n_levels * n_steps
        self.compile_s = timed(lambda: jax.block_until_ready(self.rollout(self.levels, self.states, self.actions)))
        self.episodes = 0

    def __call__(self) -> None:
        _, _, eps = jax.block_until_ready(self.rollout(self.levels, self.states, self.actions))
        self.episodes = int(eps)


class MinigridLoop:
    """Minigrid through `gymnasium.make`, one env, a Python loop."""

    def __init__(self, env_id: str, n_steps: int, seed: int = 0):
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

        self.env = gym.make(env_id)
        self.env.reset(seed=seed)
        self.actions = np.random.default_rng(seed).integers(0, 3, size=n_steps).tolist()
        self.steps = n_steps
        self.episodes = 0
        self()  # warm-up (the passive env checker runs on the first step)

    def __call__(self) -> None:
        env, episodes = self.env, 0
        for a in self.actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
                episodes += 1
        self.episodes = episodes


class MinigridSync:
    """Minigrid in `gymnasium.vector.SyncVectorEnv` (auto-reset by the vector env)."""

    def __init__(self, env_id: str, n_envs: int, n_iters: int, seed: int = 0):
        import gymnasium as gym
        import minigrid  # noqa: F401

        self.env = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)])
        self.env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        self.actions = [rng.integers(0, 3, size=n_envs) for _ in range(n_iters)]
        self.steps = n_envs * n_iters
        self()

    def __call__(self) -> None:
        for a in self.actions:
            self.env.step(a)


def run(repeats: int = 5, n_levels: int = 4096, n_steps: int = 256, minigrid_steps: int = 8000,
        sync_envs: int = 16) -> dict[str, Any]:
    """Time every contender `repeats` times, in alternation; return steps/s and ratios."""
    base = get_scenario("cheese-corner-v0")
    nine = base.with_params(grid_size=9, maze_sizes=(5, 7, 9))
    contenders: dict[str, Any] = {
        "mesascope cheese-corner-v0 7x7, step": MesascopeEnv(base, n_levels, n_steps, with_obs=False),
        "mesascope cheese-corner-v0 7x7, step+observe": MesascopeEnv(base, n_levels, n_steps, with_obs=True),
        "mesascope cheese-corner 9x9, step+observe": MesascopeEnv(nine, n_levels, n_steps, with_obs=True),
    }
    compile_s = {name: c.compile_s for name, c in contenders.items()}
    skipped = None
    try:
        require("gymnasium", "minigrid")
        contenders[f"minigrid {MINIGRID_ID}, gymnasium loop"] = MinigridLoop(MINIGRID_ID, minigrid_steps)
        contenders[f"minigrid {MINIGRID_ID}, SyncVectorEnv x{sync_envs}"] = MinigridSync(
            MINIGRID_ID, sync_envs, max(1, minigrid_steps // sync_envs)
        )
    except PeerMissing as exc:
        skipped = str(exc)

    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, c in contenders.items():
            times[name].append(timed(c))
    rows = {name: rate_summary(c.steps, times[name]) for name, c in contenders.items()}
    for name, c in contenders.items():
        if name.startswith("mesascope"):
            rows[name]["compile_s"] = compile_s[name]
            rows[name]["episodes_per_repeat"] = c.episodes

    out: dict[str, Any] = {
        "name": "env",
        "config": {"n_levels": n_levels, "n_steps": n_steps, "minigrid_env": MINIGRID_ID,
                   "minigrid_steps": minigrid_steps, "sync_envs": sync_envs, "repeats": repeats},
        "rates": rows,
        "goal": GOAL,
    }
    if skipped:
        out["skipped"] = skipped
        return out
    loop = rows[f"minigrid {MINIGRID_ID}, gymnasium loop"]["steps_per_s"]
    sync = rows[f"minigrid {MINIGRID_ID}, SyncVectorEnv x{sync_envs}"]["steps_per_s"]
    obs7 = rows["mesascope cheese-corner-v0 7x7, step+observe"]["steps_per_s"]
    out["ratios"] = {
        "step+observe vs gymnasium loop (headline)": obs7 / loop,
        "step+observe vs SyncVectorEnv": obs7 / sync,
        "step only vs gymnasium loop": rows["mesascope cheese-corner-v0 7x7, step"]["steps_per_s"] / loop,
        "9x9 step+observe vs gymnasium loop": rows["mesascope cheese-corner 9x9, step+observe"]["steps_per_s"] / loop,
    }
    out["ratio"] = out["ratios"]["step+observe vs gymnasium loop (headline)"]
    return out


def report(res: dict[str, Any]) -> None:
    print(f"== env steps/s (median of {res['config']['repeats']}, random actions) ==")
    for name, r in res["rates"].items():
        extra = f"  compile {r['compile_s']:.1f}s" if "compile_s" in r else ""
        print(f"  {name:<62} {fmt_rate(r['steps_per_s']):>8}/s  "
              f"[{fmt_rate(r['min_steps_per_s'])}..{fmt_rate(r['max_steps_per_s'])}]{extra}")
    if "skipped" in res:
        print(f"  peers skipped: {res['skipped']}")
        return
    for name, x in res["ratios"].items():
        print(f"  ratio {name:<48} {x:8.0f}x")
    print(f"  goal >= {res['goal']:.0f}x: {'met' if res['ratio'] >= res['goal'] else 'NOT met'}")


if __name__ == "__main__":
    report(run())
    sys.exit(0)
