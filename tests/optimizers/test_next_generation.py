"""One generation of the genetic algorithm (`next_generation`), shared by `make_evolve` and the mesa trainer."""

from __future__ import annotations

import mesascope  # noqa: F401  (XLA flag before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.optimizers.evolution import EvolutionConfig, next_generation


def _population(p: int = 12, d: int = 5):
    pop = jax.random.normal(jax.random.key(0), (p, d))
    fit = jax.random.normal(jax.random.key(1), (p,))
    return pop, fit


def test_truncation_with_one_elite_is_the_mesa_trainers_breeding():
    # The breeding `mesascope.systems.mesa.train_evolution` wrote inline before it used `next_generation`:
    # children copy one of the best `elite` plus Gaussian noise, and the best individual is kept. Same keys,
    # same population, to the bit.
    pop, fit = _population()
    elite, sigma = 3, 0.3
    k_pick, k_noise = jax.random.split(jax.random.key(2))
    parents = pop[jnp.argsort(-fit)[:elite]]
    picks = jax.random.randint(k_pick, (11,), 0, elite)
    expected = jnp.concatenate([parents[:1], parents[picks] + sigma * jax.random.normal(k_noise, (11, 5))])
    cfg = EvolutionConfig(pop_size=12, dim=5, mutation_sd=sigma, truncation=elite / 12, recombination=False, elite=1)
    got = next_generation(cfg, pop, fit, select=k_pick, mutate=k_noise)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_elite_survive_unmutated_and_recombination_needs_its_keys():
    pop, fit = _population()
    cfg = EvolutionConfig(pop_size=12, dim=5, selection="tournament", elite=2)
    keys = jax.random.split(jax.random.key(3), 4)
    child = next_generation(cfg, pop, fit, select=keys[0], mutate=keys[1], select_father=keys[2], mix=keys[3])
    assert child.shape == pop.shape
    np.testing.assert_array_equal(np.asarray(child[:2]), np.asarray(pop[jnp.argsort(-fit)[:2]]))
    with pytest.raises(ValueError, match="recombination"):
        next_generation(cfg, pop, fit, select=keys[0], mutate=keys[1])
