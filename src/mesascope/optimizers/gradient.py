"""Gradient descent as a base optimizer, and the capability and alignment of an optimizer (seed 004, SPEC.md §8).

* `make_descent(loss, config) -> descend(key, x0)`: plain gradient descent, or gradient descent with
  annealed Gaussian noise (Langevin-style, the noise scale decays as `noise * (1 - t / T)`), as one
  jitted `lax.scan`; returns the whole trajectory so any objective can be read off it afterwards.
* `capability` and `alignment` (seed 004, Harris): an optimizer's capability is the long-run
  improvement of its own objective; its alignment is the base objective's improvement relative to that.
  An objective attributed to an optimizer is only defined up to a positive affine transformation, so both
  are measured in units of the objective's own spread over a reference set of points (a z-score of the
  improvement): `C(U) = (U(x_T) - U(x_0)) / sd_ref(U)`, `A = C(base) / C(own)`. For `U' = a U + b`
  with `a > 0`, `U'(x_T) - U'(x_0) = a (U(x_T) - U(x_0))` and `sd_ref(U') = a sd_ref(U)`, so both are
  invariant (tested). Objectives here are **utilities** (higher is better): pass `-loss`. Seed 004's
  comments also discuss a time-summed improvement; this module measures the endpoint improvement
  after the whole run (the long-run improvement), which the same invariance argument covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DescentConfig", "alignment", "capability", "make_descent"]


@dataclass(frozen=True)
class DescentConfig:
    """Gradient descent's settings.

    Attributes:
        steps: Number of updates `T`.
        lr: Step size.
        noise: Initial standard deviation of the Gaussian noise added to each update (0: plain descent);
            annealed linearly to 0 over the run.
        record_every: Keep every `record_every`-th iterate in the returned trajectory.
    """

    steps: int = 2000
    lr: float = 0.01
    noise: float = 0.0
    record_every: int = 10


def make_descent(loss: Callable[[jax.Array], jax.Array], cfg: DescentConfig) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """`descend(key, x0 [D]) -> trajectory [T // record_every + 1, D]` minimising `loss`; jittable, vmappable."""
    grad = jax.grad(loss)
    n_rec = cfg.steps // cfg.record_every

    def step(x: jax.Array, inp: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        t, key = inp
        scale = cfg.noise * (1.0 - t / cfg.steps)
        x = x - cfg.lr * grad(x) + scale * jnp.sqrt(cfg.lr) * jax.random.normal(key, x.shape)
        return x, None

    def block(x: jax.Array, inp: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        ts, keys = inp
        x, _ = jax.lax.scan(step, x, (ts, keys))
        return x, x

    def descend(key: jax.Array, x0: jax.Array) -> jax.Array:
        ts = jnp.arange(n_rec * cfg.record_every, dtype=jnp.float32).reshape(n_rec, cfg.record_every)
        keys = jax.random.split(key, n_rec * cfg.record_every).reshape(n_rec, cfg.record_every)
        _, xs = jax.lax.scan(block, x0, (ts, keys))
        return jnp.concatenate([x0[None], xs])

    return descend


def capability(utility_start: float, utility_end: float, reference: np.ndarray) -> float:
    """Long-run improvement of a utility in units of its spread over `reference` values `[R]`."""
    sd = float(np.std(reference))
    return (utility_end - utility_start) / sd


def alignment(base_capability: float, own_capability: float) -> float:
    """Seed 004's alignment: improvement of the base utility per unit of improvement of the optimizer's own."""
    return base_capability / own_capability
