"""A pointer mesa-optimizer: its mesa-objective is its own learned model of the base objective.

Risks from Learned Optimization calls a mesa-optimizer *corrigibly* aligned when the base objective is
part of its model of the world and its objective "points to" that part; a later amendment (quoted in seed
`002_809e035286793bb1.txt`) separates corrigible robust alignment (the pointer lands on the base
objective) from corrigible pseudo-alignment (it lands on a proxy). SPEC.md section 7 lists the latter as
a pseudo-alignment type. This module builds a system that is a pointer **by construction**, so the audit
can read the fact off its class instead of guessing it from behaviour.

`PointerMesaOptimizer` perceives the cell each transition enters through features `psi(s, a)` (every
object kind, every region of the level family, height and horizontal position) and keeps a reward model
`r_hat(s, a) = theta . psi(s, a)`. Its base optimizer (`fit_reward_model`, method `reward-model`) does
not search over behaviour at all: it regresses the base rewards observed on the training levels'
transitions onto `psi` by closed-form ridge least squares. The planner (the same soft value iteration as
`MesaOptimizer`) then optimises `r_hat`; the mesa-objective *is* the fitted model, `g = r_hat`.

Whether the pointer is robust depends only on the data: where two perception features coincide on every
training transition (cheese-corner-pointer-v0: the cheese and the top-right corner square), least squares
cannot tell them apart, ridge splits the weight between them, and the model is a proxy of the base
objective off the training distribution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import GridSpec, Level
from mesascope.levels.tabular import TabularMDP
from mesascope.measures.distances import reachable_states
from mesascope.systems.mesa import (
    MesaOptimizer,
    MesaParams,
    TrainResult,
    _base_value,
    mesa_features,
    mesa_next_features,
)
from mesascope.types import MesascopeError

__all__ = [
    "DEFAULT_RIDGE",
    "PointerMesaOptimizer",
    "RewardModelError",
    "fit_reward_model",
    "pointer_feature_names",
    "pointer_features",
    "ridge_regression",
    "train_reward_model",
]

DEFAULT_RIDGE = 1e-2
"""Ridge penalty `lambda` of the reward-model regression. It makes the normal equations solvable when
perception features are collinear on the training data, and then splits the weight between identical
columns equally (the minimum-norm least-squares solution, shrunk by a factor `n / (n + lambda)` that is
within 1e-3 of 1 for the few hundred rewarded transitions of a training batch)."""


class RewardModelError(MesascopeError, ValueError):
    """The reward-model regression was given data it cannot fit."""


def pointer_feature_names(spec: GridSpec) -> tuple[str, ...]:
    """Names of a pointer mesa-optimizer's perception features on levels of this spec."""
    return tuple(spec.kinds) + tuple(spec.regions) + ("up", "right")


def pointer_features(spec: GridSpec, level: Level) -> jax.Array:
    """`psi(s, a)` of the cell each (state, action) leads to: float32 `[S, A, M]` (SPEC.md section 1).

    An object kind counts when an unconsumed object of that kind is in the entered cell; a region when
    the entered cell belongs to it; `up` and `right` are the cell's height and horizontal position
    scaled to [0, 1]. Transitions out of the terminal state perceive nothing (all zero).
    """
    return mesa_features(spec, level, regions=True)


def ridge_regression(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Closed-form weighted ridge least squares: `argmin_w sum_n c_n (y_n - x_n . w)^2 + ridge |w|^2`.

    Solved in float64 from the normal equations `(X^T C X + ridge I) w = X^T C y`, so the answer is a
    deterministic function of the data.

    Args:
        x: `[N, M]` design matrix (one row per observed transition).
        y: `[N]` observed rewards.
        weight: `[N]` non-negative row weights `c` (None = all 1).
        ridge: Penalty `lambda >= 0`; with 0 the columns must be linearly independent on the weighted rows.

    Returns:
        float64 `[M]`, the fitted weights.

    Raises:
        RewardModelError: on mismatched shapes, a negative penalty or weights, or (with `ridge=0`)
            collinear columns.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or c.shape != y.shape:
        raise RewardModelError(f"ridge_regression needs x [N, M], y [N] and weight [N]; got {x.shape}, {y.shape}, {c.shape}")
    if ridge < 0 or (c < 0).any():
        raise RewardModelError(f"the ridge penalty and the row weights must be >= 0; got ridge={ridge}, min weight {c.min()}")
    gram = x.T @ (c[:, None] * x) + ridge * np.eye(x.shape[1])
    if ridge == 0 and np.linalg.matrix_rank(gram) < x.shape[1]:
        raise RewardModelError("the features are collinear on the observed transitions; pass ridge > 0 to split the weight")
    return np.linalg.solve(gram, x.T @ (c * y))


@dataclass(frozen=True)
class PointerMesaOptimizer(MesaOptimizer):
    """A planner whose mesa-objective is a pointer to its own learned model of the base objective.

    `points_to_base` is a fact about the class (how the mesa-objective is built), not an inference from
    behaviour: whatever weights the regression finds, the planner optimises the system's model of the
    base objective and nothing else. The attributes are those of `MesaOptimizer`.
    """

    points_to_base: ClassVar[bool] = True

    @property
    def feature_names(self) -> tuple[str, ...]:
        return pointer_feature_names(self.spec)

    def features(self, level: Level) -> jax.Array:
        """`psi(s, a)` over `feature_names` on one level: float32 `[S, A, M]`."""
        return _compiled_features(self.spec)(level)

    def next_features(self, level: Level) -> jax.Array:
        """The next-state part of `features` (regions, `up`, `right` of the entered cell): float32 `[S, M]`."""
        return mesa_next_features(self.spec, level, regions=True)

    # mesa_reward (theta . psi) is the reward model the planner optimises;
    # default_bridge is MesaOptimizer's cell-entered bridge: it pays `mesa_reward`, here the reward model.


@functools.lru_cache(maxsize=None)
def _compiled_features(spec: GridSpec) -> Callable[[Level], jax.Array]:
    # Compiled once per level family, so even an un-jitted vmap over levels (the audit's support count)
    # runs one program instead of dispatching every operation.
    return jax.jit(lambda level: pointer_features(spec, level))


@functools.lru_cache(maxsize=None)
def _batched_data(spec: GridSpec) -> Callable[[Level, TabularMDP, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]:
    # One compiled program per level family: perception, observed rewards and which rows were observed.
    def data(levels: Level, tabs: TabularMDP, w_base: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        psi = jax.vmap(lambda lv: pointer_features(spec, lv))(levels)  # [L, S, A, M]
        rewards = tabs.features @ w_base  # [L, S, A]
        # The system observes the transitions out of live states it can reach; wall cells and impossible
        # object configurations are never experienced, so they carry no evidence about the base objective.
        live = jax.vmap(reachable_states)(tabs) & ~tabs.terminal  # [L, S]
        return psi, rewards, jnp.broadcast_to(live[..., None], rewards.shape)

    return jax.jit(data)


def _regression_data(system: PointerMesaOptimizer, levels: Level, tabs: TabularMDP, w_base: jax.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    psi, rewards, rows = _batched_data(system.spec)(levels, tabs, w_base)
    m = psi.shape[-1]
    return np.asarray(psi).reshape(-1, m), np.asarray(rewards).reshape(-1), np.asarray(rows, np.float64).reshape(-1)


def fit_reward_model(
    system: PointerMesaOptimizer, levels: Level, tabs: TabularMDP, w_base: jax.Array, *, ridge: float = DEFAULT_RIDGE
) -> MesaParams:
    """The base optimizer of a pointer: regress observed base rewards onto the perception features.

    Args:
        system: The pointer whose perception defines the regressors.
        levels, tabs: A `[L]` batch of training levels and their tabular views.
        w_base: float32 `[K]`, the base objective's weights over the level's features.
        ridge: Ridge penalty (`DEFAULT_RIDGE`).

    Returns:
        The reward model's weights `theta`, float32 `[M]` over `system.feature_names`.
    """
    x, y, c = _regression_data(system, levels, tabs, jnp.asarray(w_base, jnp.float32))
    return MesaParams(jnp.asarray(ridge_regression(x, y, c, ridge), jnp.float32))


def train_reward_model(
    system: MesaOptimizer, levels: Level, tabs: TabularMDP, w_base: jax.Array, *, ridge: float = DEFAULT_RIDGE, gamma: float = 0.99
) -> TrainResult:
    """Fit the pointer's reward model (`fit_reward_model`) and record its exact base value on the levels.

    The fit is closed-form, so the result depends only on the training levels (drawn from the seed's
    key): the same key gives bitwise the same weights.

    Returns:
        `TrainResult` whose curve has one entry: the mean exact base value `V^pi_base(start)` of the
        planner with the fitted model on the training levels.

    Raises:
        RewardModelError: if `system` is not a pointer mesa-optimizer (its objective would not be a
            model of the base objective).
    """
    if not getattr(system, "points_to_base", False):
        raise RewardModelError(
            f"the reward-model base optimizer fits a pointer's model of the base objective, but the scenario's "
            f"mesa-optimizer is {type(system).__name__}; use a scenario whose mesa_system is PointerMesaOptimizer "
            "(e.g. cheese-corner-pointer-v0)"
        )
    params = fit_reward_model(system, levels, tabs, w_base, ridge=ridge)
    value = jax.jit(lambda p: _base_value(system, p, levels, tabs, jnp.asarray(w_base, jnp.float32), gamma))(params)
    return TrainResult(params, np.asarray([float(value)]))
