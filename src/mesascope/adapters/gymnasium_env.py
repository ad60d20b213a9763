"""Gymnasium adapters, both ways (DESIGN.md: "Gymnasium adapters both ways").

Out: `ScenarioEnv` exposes any scenario's train or deploy distribution as a `gymnasium.Env`, so
Stable-Baselines3 or CleanRL can train on exactly the levels mesascope audits. Observations are the
engine's own `observe` output, so a policy trained on the env reads the same arrays mesascope feeds it.

In: `policy_from_callable` turns an outside policy (any callable from a batch of observations to
action probabilities) into a mesascope system, ready for exact auditing with
`mesascope.measures.scores.system_action_probs`.

Example:
    >>> env = make_env("cheese-corner-v0", split="deploy")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == env.observation_space.shape
    True
    >>> obs, reward, terminated, truncated, info = env.step(1)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from mesascope.levels.grid import GridSpec, Level, State, observe, reset, step
from mesascope.levels.render import render_level
from mesascope.measures.scores import PolicyFn
from mesascope.scenarios.base import SPLITS, Scenario, get_scenario, registered_ids
from mesascope.types import MesascopeError

__all__ = [
    "ENV_NAMESPACE",
    "LEVEL_BLOCK",
    "ScenarioEnv",
    "gymnasium_id",
    "make_env",
    "make_env_spec",
    "policy_from_callable",
    "register_gymnasium_envs",
]

ENV_NAMESPACE = "mesascope"
"""Gymnasium namespace of the registered environments (`mesascope/<scenario>-v0`)."""

LEVEL_BLOCK = 32
"""Levels drawn per call to the scenario's generator (one compiled program serves every draw).

Equal to `check_scenario`'s default `n_levels`, so the conformance checker and the adapter share one
compiled generator per scenario and split.
"""


@functools.lru_cache(maxsize=None)
def _level_fns(spec: GridSpec) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Jitted single-level `reset` and `step` for one spec (compiled once per spec and shape)."""

    def start(level: Level) -> tuple[State, jax.Array]:
        state = reset(level)
        return state, observe(spec, level, state)

    def advance(level: Level, state: State, action: jax.Array) -> tuple[State, jax.Array, jax.Array]:
        nxt, phi = step(spec, level, state, action)
        return nxt, observe(spec, level, nxt), phi

    return jax.jit(start), jax.jit(advance)


def _resolve(scenario: str | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, str):
        return get_scenario(scenario)
    raise MesascopeError(f"expected a scenario id or a Scenario; got {type(scenario).__name__}")


class ScenarioEnv(gymnasium.Env[np.ndarray, np.int64]):
    """One scenario's train or deploy distribution as a Gymnasium environment.

    Every `reset` starts a new level drawn from the split. Levels come from a JAX key derived from the
    environment's `np_random`, so `reset(seed=s)` followed by plain `reset()` calls always yields the
    same sequence of levels (they are drawn `LEVEL_BLOCK` at a time, one call to the scenario's compiled
    generator, and served in order; a seeded reset starts a new block). The reward is the chosen
    objective's weights dotted with the transition features; the episode terminates when a terminal
    object (cheese, coin, door) is entered and is truncated after `spec.max_steps` steps.

    Args:
        scenario: A registered scenario id (e.g. "cheese-corner-v0") or a `Scenario`.
        split: "train" (`D_train`) or "deploy" (`D_deploy`).
        objective: The reward: a name from `scenario.objectives()` ("base", "intended", or a
            candidate goal such as "corner").
        render_mode: None or "rgb_array" (the level, the agent and this episode's path).
        cell_px: Pixels per square when rendering.

    Attributes:
        scenario: The scenario.
        split: The split levels are drawn from.
        objective: The objective's name.
        weights: float32 `[K]`, the objective's weights over `scenario.feature_names`.
        level: The current level (after the first `reset`).

    `info` holds `features` (float32 `[K]`, `phi` of the last transition), `pos` (int64 `[2]`) and
    `t` (steps taken this episode).

    `reset(options={"level": level})` starts the episode on a given (unbatched) level instead of a
    drawn one, e.g. to replay one training level.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        scenario: str | Scenario,
        split: str = "train",
        objective: str = "base",
        render_mode: str | None = None,
        *,
        cell_px: int = 24,
    ) -> None:
        self.scenario = _resolve(scenario)
        if split not in SPLITS:
            raise MesascopeError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        objectives = self.scenario.objectives()
        if objective not in objectives:
            raise MesascopeError(
                f"scenario {self.scenario.id!r} has no objective {objective!r}; "
                f"choose one of: {', '.join(objectives)}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise MesascopeError(
                f"unsupported render_mode {render_mode!r}; choose None or one of: {', '.join(self.metadata['render_modes'])}"
            )
        self.split = split
        self.objective = objective
        self.render_mode = render_mode
        self.cell_px = cell_px
        spec = self.scenario.spec
        self.weights = objectives[objective].vector(self.scenario.feature_names)
        self.observation_space = spaces.Box(0.0, 1.0, spec.obs_shape, np.float32)
        self.action_space = spaces.Discrete(spec.n_actions)
        self._start, self._advance = _level_fns(spec)
        self._block: Level | None = None
        self._next = 0
        self.level: Level | None = None
        self._state: State | None = None
        self._t = 0
        self._path: list[tuple[int, int]] = []

    # -------------------------------------------------------------------------------------- levels

    def _draw_level(self, new_block: bool) -> Level:
        if new_block or self._block is None or self._next >= LEVEL_BLOCK:
            hi, lo = (int(x) for x in self.np_random.integers(0, 2**31 - 1, size=2))
            key = jax.random.fold_in(jax.random.key(hi), lo)
            self._block = self.scenario.sample_levels(key, LEVEL_BLOCK, self.split)
            self._next = 0
        level = jax.tree_util.tree_map(lambda x: x[self._next], self._block)
        self._next += 1
        return level

    def _check_level(self, level: Any) -> Level:
        if not isinstance(level, Level):
            raise MesascopeError(f'reset(options={{"level": ...}}) expects a Level; got {type(level).__name__}')
        spec = self.scenario.spec
        if tuple(np.shape(level.walls)) != (spec.height, spec.width):
            raise MesascopeError(
                f"the level's walls have shape {np.shape(level.walls)}; this scenario's levels are "
                f"{(spec.height, spec.width)} (pass one level, not a batch)"
            )
        return Level(*(jnp.asarray(x) for x in level))

    # ----------------------------------------------------------------------------------- Env API

    def _info(self, phi: np.ndarray) -> dict[str, Any]:
        assert self._state is not None
        return {"features": phi, "pos": np.asarray(self._state.pos, np.int64).copy(), "t": self._t}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and options.get("level") is not None:
            self.level = self._check_level(options["level"])
        else:
            self.level = self._draw_level(new_block=seed is not None)
        self._state, obs = self._start(self.level)
        self._t = 0
        self._path = [tuple(int(v) for v in np.asarray(self._state.pos))]
        return np.array(obs, np.float32), self._info(np.zeros(len(self.weights), np.float32))

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._state is None or self.level is None:
            raise MesascopeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.action_space.n:
            raise MesascopeError(f"action must be an integer in [0, {self.action_space.n}); got {action!r}")
        self._state, obs, phi = self._advance(self.level, self._state, jnp.int32(a))
        self._t += 1
        phi = np.array(phi, np.float32)
        reward = float(phi @ self.weights)
        terminated = bool(self._state.done)
        truncated = (not terminated) and self._t >= self.scenario.spec.max_steps
        self._path.append(tuple(int(v) for v in np.asarray(self._state.pos)))
        return np.array(obs, np.float32), reward, terminated, truncated, self._info(phi)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """RGB uint8 `[H * cell_px, W * cell_px, 3]` of the current level and this episode's path."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self.level is None or self._state is None:
            raise MesascopeError("call reset() before render()")
        image = render_level(self.scenario.spec, self.level, state=self._state, trajectory=self._path, cell_px=self.cell_px)
        return np.asarray(image, np.uint8).copy()


# ------------------------------------------------------------------------------------ registration


def make_env(scenario_id: str | Scenario, **kwargs: Any) -> ScenarioEnv:
    """A `ScenarioEnv` for a scenario id (keyword arguments as for `ScenarioEnv`)."""
    return ScenarioEnv(scenario_id, **kwargs)


def gymnasium_id(scenario_id: str, split: str = "train") -> str:
    """The Gymnasium id of a scenario's split: `mesascope/<name>-vN` (train) or `mesascope/<name>-deploy-vN`."""
    if split not in SPLITS:
        raise MesascopeError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    match = re.fullmatch(r"(.+?)(-v\d+)?", scenario_id)
    assert match is not None
    name, version = match.group(1), match.group(2) or ""
    suffix = "" if split == "train" else "-deploy"
    return f"{ENV_NAMESPACE}/{name}{suffix}{version}"


def make_env_spec(scenario: str | Scenario, *, split: str = "train", objective: str = "base") -> EnvSpec:
    """A Gymnasium `EnvSpec` building a `ScenarioEnv` (for `gymnasium.make(spec)`, even unregistered)."""
    sid = scenario if isinstance(scenario, str) else scenario.id
    return EnvSpec(
        id=gymnasium_id(sid, split),
        entry_point=ScenarioEnv,
        kwargs={"scenario": scenario, "split": split, "objective": objective},
    )


def register_gymnasium_envs() -> list[str]:
    """Register every scenario's train and deploy split with Gymnasium (idempotent).

    Afterwards `gymnasium.make("mesascope/cheese-corner-v0")` builds the train split and
    `gymnasium.make("mesascope/cheese-corner-deploy-v0")` the deploy split; keyword arguments
    (`objective=...`, `render_mode=...`) pass through to `ScenarioEnv`.

    Returns:
        Every mesascope Gymnasium id, sorted.
    """
    ids = []
    for sid in registered_ids():
        for split in SPLITS:
            gid = gymnasium_id(sid, split)
            if gid not in gymnasium.registry:
                gymnasium.register(
                    id=gid,
                    entry_point="mesascope.adapters.gymnasium_env:ScenarioEnv",
                    kwargs={"scenario": sid, "split": split},
                )
            ids.append(gid)
    return sorted(ids)


# ------------------------------------------------------------------------------------ outside policies


def policy_from_callable(
    fn: Callable[[np.ndarray], Any], *, n_actions: int = 4, from_logits: bool = False, atol: float = 1e-3
) -> PolicyFn:
    """Wrap an outside policy as a mesascope system.

    An outside policy is any callable from a batch of observations float32 `[B, H, W, C]` (a numpy
    array laid out exactly as `ScenarioEnv` observations) to action probabilities `[B, A]` (numpy,
    JAX, or anything `np.asarray` accepts, e.g. a CPU torch tensor). The wrapper converts the
    observations to numpy, calls `fn`, checks the result and returns it as a JAX array, so the result
    plugs into `system_action_probs` and every measure downstream. It is not jittable (the outside
    callable is opaque), which is fine: an audit calls it once per batch of states.

    A Stable-Baselines3 policy trained on a `ScenarioEnv`, for example::

        def sb3_probs(obs):
            with torch.no_grad():
                dist = model.policy.get_distribution(torch.as_tensor(obs))
            return dist.distribution.probs.numpy()

        system = policy_from_callable(sb3_probs)

    Args:
        fn: The outside policy.
        n_actions: `A`, the number of actions (4 for gridworld levels).
        from_logits: `fn` returns unnormalised logits; apply a softmax.
        atol: Tolerance on rows summing to 1.

    Returns:
        A `PolicyFn`: `[B, H, W, C] -> [B, A]` float32 probabilities.

    Raises:
        MesascopeError: (when called) if `fn` returns the wrong shape, non-finite values, or rows
            that are not probability distributions.
    """

    def policy(obs: jax.Array) -> jax.Array:
        batch = np.asarray(obs, np.float32)
        out = np.asarray(fn(batch), np.float64)
        if out.shape != (batch.shape[0], n_actions):
            raise MesascopeError(
                f"the outside policy returned shape {out.shape} for {batch.shape[0]} observations; "
                f"expected [B, A] = {(batch.shape[0], n_actions)}"
            )
        if not np.isfinite(out).all():
            raise MesascopeError("the outside policy returned NaN or infinite values")
        if from_logits:
            out = np.exp(out - out.max(-1, keepdims=True))
            out /= out.sum(-1, keepdims=True)
        elif (out < -atol).any() or np.abs(out.sum(-1) - 1.0).max() > atol:
            raise MesascopeError(
                "the outside policy's rows are not probability distributions (non-negative, summing to 1); "
                "pass from_logits=True if it returns logits"
            )
        return jnp.asarray(np.clip(out, 0.0, None), jnp.float32)

    return policy
